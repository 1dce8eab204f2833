"""Small files on lakehouse storage through the session's Hadoop FileSystem (here the local
one, addressed both as a bare path and as a file: URI)."""

from lakeloop import storage


def test_glob_lists_files_only_and_skips_hidden_names(spark, tmp_path):
    day = tmp_path / "landing" / "date=2026-01-01"
    day.mkdir(parents=True)
    for name in ("b.csv", "a.csv", ".a.csv.crc", "_SUCCESS.csv", ".upload-in-flight.csv"):
        (day / name).write_text("x\n")
    (day / "folder.csv").mkdir()
    found = storage.glob_files(spark, f"{tmp_path}/landing/date=2026-01-01/*.csv")
    assert [f.rsplit("/", 1)[1] for f in found] == ["a.csv", "b.csv"]
    assert all(f.startswith("file:") for f in found)  # fully qualified
    assert storage.glob_files(spark, f"file://{tmp_path}/landing/date=2026-01-02/*.csv") == []


def test_write_replaces_reads_back_and_leaves_no_temporary(spark, tmp_path):
    uri = f"file://{tmp_path}/reports/p/summary.md"
    storage.write_text(spark, uri, "first")
    storage.write_text(spark, uri, "second ✓")
    assert storage.read_text(spark, uri) == "second ✓"
    assert storage.exists(spark, uri) and not storage.exists(spark, f"{uri}.missing")
    names = storage.list_names(spark, f"file://{tmp_path}/reports/p")
    assert [n for n in names if not n.endswith(".crc")] == ["summary.md"]
    assert storage.list_names(spark, f"{tmp_path}/nowhere") == []


def test_upload_dir_copies_a_tree_into_a_folder(spark, tmp_path):
    src = tmp_path / "built"
    (src / "static").mkdir(parents=True)
    (src / "index.html").write_text("<html/>")
    (src / "static" / "app.js").write_text("1")
    dest = f"{tmp_path}/lake/reports/docs"
    storage.upload_dir(spark, str(src), dest)
    (src / "index.html").write_text("<html>v2</html>")
    storage.upload_dir(spark, str(src), dest)  # again: files replaced
    assert storage.read_text(spark, f"{dest}/index.html") == "<html>v2</html>"
    assert storage.read_text(spark, f"{dest}/static/app.js") == "1"
