/* Live regions (htmx polling of server-rendered fragments): no state in the browser beyond the page.
 * - A region marked data-live pauses while the user works inside it (focus within), so a refresh never
 *   throws away what they were typing or the button they were about to press.
 * - A lost login (the poll was redirected to the login page) reloads the page instead of swapping the
 *   login form into the region.
 * - A failed poll shows the region's warning (data-live-warning="id") until the next success. */
(function () {
  "use strict";

  function byId(el, attr) {
    var id = el.getAttribute(attr);
    return id ? document.getElementById(id) : null;
  }

  function busy(el) {
    var active = document.activeElement;
    return !!(active && active !== document.body && el.contains(active));
  }

  document.addEventListener("htmx:beforeRequest", function (evt) {
    var el = evt.detail.elt;
    if (!el || !el.hasAttribute || !el.hasAttribute("data-live")) { return; }
    var note = byId(el, "data-live-paused");
    if (busy(el)) {
      evt.preventDefault();
      if (note) { note.hidden = false; }
      return;
    }
    if (note) { note.hidden = true; }
  });

  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    if (xhr && xhr.responseURL && xhr.responseURL.indexOf("/login") !== -1) {
      evt.detail.shouldSwap = false;
      window.location.reload();
    }
  });

  document.addEventListener("htmx:afterRequest", function (evt) {
    var el = evt.detail.elt;
    if (!el || !el.hasAttribute || !el.hasAttribute("data-live")) { return; }
    var warning = byId(el, "data-live-warning");
    if (!warning) { return; }
    var xhr = evt.detail.xhr;
    var ok = evt.detail.successful || (xhr && xhr.status === 304);
    warning.hidden = !!ok;
  });
})();
