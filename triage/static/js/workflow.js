/* The workflow diagram: Mermaid (vendored) draws the state diagram from the text the server wrote into the page.
 * The CSP forbids inline styles, so Mermaid's <style> element and style attributes would be dropped: we take the
 * SVG Mermaid returns, move its stylesheet into a constructed stylesheet (document.adoptedStyleSheets, which the
 * CSP allows) and copy each style attribute through the CSSOM. No CSP relaxation is needed. */
(function () {
  "use strict";

  var host = document.getElementById("workflow-diagram");
  var source = document.getElementById("workflow-source");
  if (!host || !source || typeof window.mermaid === "undefined") { return; }
  var SVG_ID = "workflow-svg";

  function fail() {
    host.textContent = host.getAttribute("data-render-failed") || "";
    source.hidden = false;
  }

  function insert(svgText) {
    var doc = new DOMParser().parseFromString(svgText, "image/svg+xml");
    var svg = doc.documentElement;
    if (!svg || svg.nodeName.toLowerCase() !== "svg") { fail(); return; }
    var rules = [];
    Array.prototype.slice.call(svg.querySelectorAll("style")).forEach(function (el) {
      rules.push(el.textContent);
      el.parentNode.removeChild(el);
    });
    if (rules.length && "adoptedStyleSheets" in document) {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(rules.join("\n"));
      document.adoptedStyleSheets = document.adoptedStyleSheets.concat([sheet]);
    }
    var styled = [];
    Array.prototype.slice.call(svg.querySelectorAll("[style]")).concat([svg]).forEach(function (el) {
      var value = el.getAttribute("style");
      if (value === null) { return; }
      el.removeAttribute("style");
      el.setAttribute("data-wf-style", String(styled.length));
      styled.push(value);
    });
    var node = document.importNode(svg, true);
    host.textContent = "";
    host.appendChild(node);
    Array.prototype.slice.call(host.querySelectorAll("[data-wf-style]")).forEach(function (el) {
      el.style.cssText = styled[Number(el.getAttribute("data-wf-style"))];
      el.removeAttribute("data-wf-style");
    });
    node.setAttribute("role", "img");
  }

  window.mermaid.initialize({
    startOnLoad: false, securityLevel: "strict", htmlLabels: false,
    flowchart: { htmlLabels: false }, state: { useMaxWidth: true },
    themeVariables: { fontFamily: "system-ui, sans-serif", fontSize: "15px" }
  });
  window.mermaid.render(SVG_ID, source.textContent).then(function (result) {
    insert(result.svg);
  }).catch(fail);
})();
