// MathJax 3 (a local copy, see mkdocs_hooks.py): typeset only what pymdownx.arithmatex marked
// (generic mode) and the Markdown cells of the notebooks that mkdocs-jupyter renders. MathJax
// skips every element whose class matches ignoreHtmlClass (all of them, an empty class included)
// unless its class matches processHtmlClass, so each element inside a notebook's Markdown cell
// is marked before the first typesetting.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex|notebook-math",
  },
  startup: {
    pageReady() {
      for (const cell of document.querySelectorAll(".jp-RenderedMarkdown")) {
        for (const element of [cell, ...cell.querySelectorAll("*")]) {
          element.classList.add("notebook-math");
        }
      }
      return MathJax.startup.defaultPageReady();
    },
  },
};
