"""MkDocs hooks: the documentation site's files that live outside ``docs/``.

- MathJax, from the installed ``django-static-mathjax`` wheel (a copy of MathJax 3 with no
  dependency; the dev extra installs it), so that the site typesets its formulas with nothing
  fetched from another host, neither at build time nor when a reader opens a page offline;
- the repository's screenshot (``assets/screenshot.png``), shown on the home page;
- the notebooks of ``examples/``, rendered by mkdocs-jupyter under ``examples/`` (this hook runs
  before the plugin's own ``on_files``, which converts every notebook it is given).
"""

from __future__ import annotations

from pathlib import Path

import mathjax
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent
MATHJAX = Path(mathjax.__file__).resolve().parent / "static" / "mathjax" / "es5"
MATHJAX_URI = "javascripts/mathjax"  # mkdocs.yml's extra_javascript names the same folder
# tex-chtml.js and the web fonts it loads from its own folder's output/chtml/fonts/woff-v2
MATHJAX_FILES = [
    "tex-chtml.js",
    *(
        f"output/chtml/fonts/woff-v2/{p.name}"
        for p in sorted((MATHJAX / "output/chtml/fonts/woff-v2").iterdir())
    ),
]


@event_priority(100)  # before mkdocs-jupyter's on_files
def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add MathJax's files, the screenshot and ``examples/*.ipynb`` to the site's files."""
    urls = config.use_directory_urls
    for name in MATHJAX_FILES:
        uri = f"{MATHJAX_URI}/{name}"
        files.append(File(name, str(MATHJAX), config.site_dir, urls, dest_uri=uri))
    files.append(File("assets/screenshot.png", str(ROOT), config.site_dir, urls))
    for notebook in sorted((ROOT / "examples").glob("*.ipynb")):
        files.append(File(f"examples/{notebook.name}", str(ROOT), config.site_dir, urls))
    return files
