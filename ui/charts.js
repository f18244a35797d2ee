// One Plotly chart, drawn by plotly.js and updated in place (Plotly.react) when its figure
// changes: a Streamlit v2 component (ui/charts.py). PLOTLY_URL is defined above this file by
// ui/charts.py: the plotly.min.js of the installed plotly package. Until plotly.js has drawn it,
// the chart's empty box shows the component's placeholder (ui/charts.py, PLACEHOLDER_CSS).

const decoder = new TextDecoder();
const DEFAULT_HEIGHT = 450; // plotly.js's, for a figure that sets none

// plotly.js, loaded once per page by a script tag (it sets window.Plotly).
function plotlyLoaded() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__convexifyPlotly) {
    window.__convexifyPlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = new URL(PLOTLY_URL, document.baseURI).href;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => {
        window.__convexifyPlotly = undefined; // the next chart tries again
        reject(new Error(`plotly.js did not load from ${script.src}`));
      };
      document.head.appendChild(script);
    });
  }
  return window.__convexifyPlotly;
}

function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// `over` merged into `under`, recursively for objects: what `over` says wins.
function merged(under, over) {
  const out = { ...under };
  for (const [key, value] of Object.entries(over)) {
    out[key] = isObject(value) && isObject(out[key]) ? merged(out[key], value) : value;
  }
  return out;
}

// A CSS colour ("rgb(r, g, b)", as getComputedStyle gives it) at the opacity alpha.
function faded(color, alpha) {
  const [r, g, b] = color.match(/[\d.]+/g) ?? [49, 51, 63];
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

// The page's theme (its text colour and font: `style`, computed), as Streamlit's own Plotly
// theme sets it, laid over the figure's template: the figure's explicit layout still decides.
function themed(layout, style) {
  const text = { family: style.fontFamily, color: style.color };
  const grid = faded(style.color, 0.1);
  const sceneAxis = {
    backgroundcolor: faded(style.color, 0.04),
    gridcolor: faded(style.color, 0.25),
    zerolinecolor: faded(style.color, 0.4),
  };
  const theme = {
    font: { ...text, size: 12 },
    title: { font: { ...text, size: 16 }, x: 0, xanchor: "left", pad: { l: 4 } },
    legend: { valign: "top", font: { size: 12 }, borderwidth: 0 },
    paper_bgcolor: "rgba(0, 0, 0, 0)",
    plot_bgcolor: "rgba(0, 0, 0, 0)",
    margin: { l: 0, r: 0, pad: 6 },
    xaxis: {
      automargin: true,
      showgrid: false,
      zeroline: false,
      gridcolor: grid,
      tickfont: { size: 12 },
    },
    yaxis: { automargin: true, gridcolor: grid, zerolinecolor: grid, tickfont: { size: 12 } },
    // 3-D boxes: faint walls in the page's colour (the template's light blue-grey glared on the
    // dark theme)
    scene: Object.fromEntries(["xaxis", "yaxis", "zaxis"].map((axis) => [axis, sceneAxis])),
    hoverlabel: { font: { family: text.family, size: 12 } },
  };
  const template = layout.template || {};
  return { ...layout, template: { ...template, layout: merged(template.layout || {}, theme) } };
}

// The figure as plotly.js draws it here: themed, as wide as its column (kept so by a
// ResizeObserver when the column changes width).
function drawable(figure, style) {
  const layout = themed({ ...(figure.layout || {}), autosize: true }, style);
  delete layout.width;
  return {
    data: figure.data || [],
    layout,
    frames: figure.frames || [],
    config: { displaylogo: false, ...(figure.config || {}) },
  };
}

export default function (component) {
  const { parentElement, data } = component;
  if (data === null || data === undefined) {
    // The router's preload (ui/charts.py, preload_plotly): plotly.js starts loading now, while
    // the page's script still runs; the charts that come later find it loaded or loading.
    plotlyLoaded().catch(() => undefined); // a chart that needs it says so if it fails
    return undefined;
  }
  let chart = parentElement.querySelector("div.convexify-chart");
  if (!chart) {
    chart = document.createElement("div");
    chart.className = "convexify-chart";
    parentElement.appendChild(chart);
  }
  // Streamlit calls the last function returned when the chart leaves the page.
  const cleanup = () => {
    chart.__convexifyResize?.disconnect();
    if (window.Plotly) window.Plotly.purge(chart);
  };
  const text = typeof data === "string" ? data : decoder.decode(data);
  // What the chart shows: its figure in the page's colours (a switch to the dark theme redraws).
  const style = getComputedStyle(parentElement);
  const shown = `${style.color} ${style.fontFamily} ${text}`;
  if (chart.__convexifyShown === shown) return cleanup; // a rerun that left this chart alone
  chart.__convexifyShown = shown;
  const figure = JSON.parse(text);
  // The chart's height at once, before plotly.js has loaded: nothing below it moves later.
  chart.style.height = `${figure.layout?.height ?? DEFAULT_HEIGHT}px`;
  plotlyLoaded()
    .then(() => {
      if (chart.__convexifyShown !== shown) return undefined; // a newer figure came meanwhile
      if (!chart.__convexifyResize) {
        let width = chart.clientWidth;
        chart.__convexifyResize = new ResizeObserver(() => {
          if (chart.clientWidth !== width && chart.classList.contains("js-plotly-plot")) {
            width = chart.clientWidth;
            window.Plotly.Plots.resize(chart);
          }
        });
        chart.__convexifyResize.observe(chart);
      }
      return window.Plotly.react(chart, drawable(figure, style));
    })
    .catch((error) => {
      chart.textContent = `The chart could not be drawn: ${error.message}`;
    });
  return cleanup;
}
