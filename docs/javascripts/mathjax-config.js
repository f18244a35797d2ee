// MathJax 3 (a local copy, see mkdocs_hooks.py): typeset only what pymdownx.arithmatex marked
// (generic mode) and the Markdown cells of the notebooks mkdocs-jupyter renders.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown",
  },
};
