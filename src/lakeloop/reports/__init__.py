"""Reports a person reads: the HTML run report (+ index across dates) and the Markdown reports
(data-quality summary, model report, ingest report), all rendered from Jinja2 templates under
templates/."""
