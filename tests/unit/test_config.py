import json
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from lakeloop.config import ConfigError, load_config, mask, masked_tree, parse_set_pairs

ROOT = Path(__file__).resolve().parents[2]


def _project(tmp_path: Path, base: str, env: str = "") -> Path:
    (tmp_path / "conf/base").mkdir(parents=True)
    (tmp_path / "conf/dev").mkdir(parents=True)
    (tmp_path / "conf/base/lakeloop.yaml").write_text(base)
    (tmp_path / "conf/dev/lakeloop.yaml").write_text(env)
    return tmp_path


def test_base_and_env_overlay():
    cfg = load_config("test", project_root=ROOT)
    assert cfg.env == "test"
    assert cfg.spark.shuffle_partitions == 2  # from conf/test over conf/base's 4
    assert cfg.spark.app_name == "lakeloop"  # from conf/base
    assert cfg.lakehouse_root == str((ROOT / ".lakehouse").resolve())


def test_set_overrides_win():
    cfg = load_config(
        "test",
        parse_set_pairs(["spark.shuffle_partitions=3", "lakehouse_root=/tmp/x"]),
        project_root=ROOT,
    )
    assert cfg.spark.shuffle_partitions == 3
    assert str(cfg.lakehouse_root) == "/tmp/x"


def test_unknown_key_names_file_and_key(tmp_path):
    root = _project(tmp_path, "lakehouse_root: lh\n", "spark:\n  shufle_partitions: 2\n")
    with pytest.raises(ConfigError) as e:
        load_config("dev", project_root=root)
    assert "conf/dev/lakeloop.yaml" in str(e.value)
    assert "spark.shufle_partitions: unknown key" in str(e.value)


def test_missing_value_is_named(tmp_path):
    root = _project(tmp_path, "spark:\n  master: local[1]\n")
    with pytest.raises(ConfigError, match="key lakehouse_root: missing value"):
        load_config("dev", project_root=root)


def test_wrong_type_names_file_and_key(tmp_path):
    root = _project(tmp_path, "lakehouse_root: lh\nspark:\n  shuffle_partitions: many\n")
    with pytest.raises(ConfigError, match=r"conf/base/lakeloop.yaml: key spark.shuffle_partitions"):
        load_config("dev", project_root=root)


def test_literal_secret_is_rejected(tmp_path):
    root = _project(tmp_path, "lakehouse_root: lh\nkafka:\n  sasl_password: hunter2\n")
    with pytest.raises(ConfigError, match="sasl_password_env"):
        load_config("dev", project_root=root)


def test_secret_comes_from_env_and_is_not_in_the_log_dump(tmp_path, monkeypatch):
    root = _project(tmp_path, "lakehouse_root: lh\nkafka:\n  sasl_password_env: KPASS\n")
    monkeypatch.setenv("KPASS", "s3cret-value")
    cfg = load_config("dev", project_root=root)
    secret = cfg.secret(cfg.kafka.sasl_password_env)
    assert isinstance(secret, SecretStr) and secret.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(secret) and "s3cret-value" not in str(cfg.redacted())
    assert mask('jaas: password="s3cret-value";') == 'jaas: password="***";'


@pytest.mark.parametrize(
    "yaml_text, key",
    [
        (
            "spark:\n  extra_conf: {spark.hadoop.fs.s3a.secret.key: AKIAxyz}\n",
            "spark.extra_conf.spark.hadoop.fs.s3a.secret.key",
        ),
        ("kafka:\n  sasl_password: hunter2\n", "kafka.sasl_password"),
        ("mlflow:\n  auth:\n    client_key: abc\n", "mlflow.auth.client_key"),
        ("mlflow:\n  token: abc\n", "mlflow.token"),
    ],
)
def test_a_literal_secret_anywhere_is_rejected_with_its_key(tmp_path, yaml_text, key):
    root = _project(tmp_path, "lakehouse_root: lh\n" + yaml_text)
    with pytest.raises(ConfigError, match=re.escape(f"key {key} holds a literal secret")):
        load_config("dev", project_root=root)


def test_a_literal_secret_in_a_set_override_is_rejected(tmp_path):
    root = _project(tmp_path, "lakehouse_root: lh\n")
    pairs = parse_set_pairs(["spark.extra_conf.spark.hadoop.fs.s3a.access.key=AKIA123"])
    assert pairs == {"spark": {"extra_conf": {"spark.hadoop.fs.s3a.access.key": "AKIA123"}}}
    with pytest.raises(ConfigError, match=r"--set: key spark.extra_conf.spark.hadoop.fs.s3a"):
        load_config("dev", pairs, project_root=root)


def test_spark_secret_from_env_reaches_spark_but_no_dump(tmp_path, monkeypatch):
    from lakeloop.session import session_conf

    root = _project(tmp_path, "lakehouse_root: lh\n")
    monkeypatch.setenv("S3_SECRET", "wJalrXUtnFEMI-K7MDENG")
    pairs = parse_set_pairs(["spark.extra_conf_env.spark.hadoop.fs.s3a.secret.key=S3_SECRET"])
    cfg = load_config("dev", pairs, project_root=root)
    assert session_conf(cfg)["spark.hadoop.fs.s3a.secret.key"] == "wJalrXUtnFEMI-K7MDENG"
    dumped = json.dumps(cfg.redacted())
    assert "wJalrXUtnFEMI-K7MDENG" not in dumped and "S3_SECRET" in dumped


def test_redacted_masks_credential_keys_even_without_env():
    tree = {"spark": {"extra_conf": {"spark.hadoop.fs.s3a.secret.key": "x", "spark.a": "b"}}}
    assert masked_tree(tree) == {
        "spark": {"extra_conf": {"spark.hadoop.fs.s3a.secret.key": "***", "spark.a": "b"}}
    }


def test_missing_secret_env_is_a_clear_error(tmp_path, monkeypatch):
    root = _project(tmp_path, "lakehouse_root: lh\n")
    monkeypatch.delenv("NOPE_PASS", raising=False)
    cfg = load_config("dev", project_root=root)
    with pytest.raises(ConfigError, match="NOPE_PASS is not set"):
        cfg.secret("NOPE_PASS")


def test_unknown_env_is_an_error():
    with pytest.raises(ConfigError, match="unknown environment 'prod2'"):
        load_config("prod2", project_root=ROOT)


def test_invalid_yaml_names_the_file(tmp_path):
    root = _project(tmp_path, "lakehouse_root: [unclosed\n")
    with pytest.raises(ConfigError, match="lakeloop.yaml: not valid YAML"):
        load_config("dev", project_root=root)


def test_set_pair_needs_equals():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set_pairs(["spark.master"])


def test_duplicate_keys_in_a_config_file_are_an_error(tmp_path):
    from lakeloop.config import read_yaml

    f = tmp_path / "lakeloop.yaml"
    f.write_text("spark:\n  master: local[2]\n  driver_memory: 1g\n  master: local[1]\n")
    with pytest.raises(
        ConfigError, match=r"duplicate key 'master' \(line 4; first given on line 2\)"
    ):
        read_yaml(f)


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("spark.extra_conf.spark.hadoop.fs.s3a.secret.key", True),
        ("spark.extra_conf.spark.hadoop.fs.azure.account.oauth2.client.secret", True),
        ("kafka.sasl_password", True),
        ("auth.client_key", True),
        # a class name that provides credentials is not one: it may stand in YAML
        ("spark.extra_conf.spark.hadoop.fs.s3a.aws.credentials.provider", False),
        ("spark.extra_conf.spark.hadoop.fs.azure.account.oauth.provider.type", False),
        ("kafka.sasl_password_env", False),
    ],
)
def test_secret_keys_and_mechanism_names(key, secret):
    from lakeloop.config import is_secret_key

    assert is_secret_key(key) is secret


def test_loopback_pins_only_in_the_dev_and_test_profiles():
    """The cluster profile pins no driver host (executors on other machines must reach the
    driver); dev and test keep everything on loopback. Under spark-submit the jars are the
    deployment's: the session settings carry none and need no jar folder."""
    from lakeloop.session import session_conf

    for env in ("dev", "test"):
        cfg = load_config(env, project_root=ROOT)
        assert session_conf(cfg)["spark.driver.host"] == "127.0.0.1" == cfg.spark.local_ip
    cluster = load_config("cluster", project_root=ROOT)
    assert cluster.spark.driver_host is None and cluster.spark.local_ip is None
    conf = session_conf(cluster, launches_jvm=False)
    assert "spark.driver.host" not in conf and "spark.jars" not in conf
    assert conf["spark.sql.warehouse.dir"] == f"{cluster.lakehouse_root}/_warehouse"
    assert cluster.lakehouse_root.startswith("hdfs://")


def test_driver_java_options_go_to_the_jvm_lakeloop_launches_only():
    """In-process (lakeloop starts the JVM) the options are a launch setting; under
    spark-submit the JVM is running already, so the deployment's command gives them."""
    from lakeloop.session import session_conf

    cfg = load_config("test", project_root=ROOT)
    assert "-XX:+UseSerialGC" in cfg.spark.driver_java_options
    conf = session_conf(cfg)
    assert conf["spark.driver.extraJavaOptions"] == cfg.spark.driver_java_options
    assert "spark.driver.extraJavaOptions" not in session_conf(cfg, launches_jvm=False)
    off = load_config("test", {"spark": {"driver_java_options": ""}}, project_root=ROOT)
    assert "spark.driver.extraJavaOptions" not in session_conf(off)


def test_spark_settings_given_as_yaml_scalars_are_spark_strings():
    cfg = load_config(
        "test",
        parse_set_pairs(
            [
                "spark.extra_conf.spark.eventLog.compress=false",
                "spark.extra_conf.spark.sql.shuffle.partitions=8",
                "spark.extra_conf.spark.memory.fraction=0.5",
            ]
        ),
        project_root=ROOT,
    )
    assert cfg.spark.extra_conf == {
        "spark.eventLog.compress": "false",
        "spark.sql.shuffle.partitions": "8",
        "spark.memory.fraction": "0.5",
    }
    with pytest.raises(ConfigError, match="extra_conf"):
        load_config("test", {"spark": {"extra_conf": {"spark.x": [1, 2]}}}, project_root=ROOT)
