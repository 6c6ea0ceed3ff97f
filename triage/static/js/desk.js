/* The entrance desk: keyboard first, scanner friendly; camera scanning where the browser can.
 * Everything here is an enhancement: the desk works with the keyboard and a USB scanner without it. */
(function () {
  "use strict";

  // After a refused submit, start at the first field that needs correcting (not at the autofocus field,
  // where a reflex Enter would just send the same thing again). Otherwise focus what the page marks.
  var invalid = document.querySelector("[aria-invalid=true]");
  var wanted = invalid || document.querySelector("[data-autofocus]");
  if (wanted && (invalid || document.activeElement === document.body || !document.activeElement)) {
    wanted.focus();
  }

  // The scan field keeps a refused code so the nurse can read it, but the next scan must replace it:
  // select the text whenever the field gets focus, so a scanner's keystrokes overwrite it.
  var code = document.querySelector("input[name=code]");
  if (code) {
    code.addEventListener("focus", function () { code.select(); });
    if (document.activeElement === code) { code.select(); }
  }

  // Alt+letter shortcuts, the same letters as the accesskey attributes (which browsers map differently:
  // Alt, Alt+Shift, Control+Option). Buttons and links are activated, fields focused.
  document.addEventListener("keydown", function (evt) {
    if (!evt.altKey || evt.ctrlKey || evt.metaKey || !evt.code || evt.code.indexOf("Key") !== 0) { return; }
    var target = document.querySelector("[accesskey='" + evt.code.slice(3).toLowerCase() + "']");
    if (!target) { return; }
    evt.preventDefault();
    target.focus();
    if (target.tagName === "BUTTON" || target.tagName === "A") { target.click(); }
  });

  // One decision per submit: a second Enter while the first is on its way must not send it again.
  var triage = document.getElementById("triage-form");
  if (triage) {
    triage.addEventListener("submit", function (evt) {
      if (triage.getAttribute("data-submitting") === "1") { evt.preventDefault(); return; }
      triage.setAttribute("data-submitting", "1");
      window.setTimeout(function () { triage.removeAttribute("data-submitting"); }, 8000);
    });
  }

  // Camera scanning with the BarcodeDetector API (Chrome on Android, Edge, ...). Hidden elsewhere.
  var box = document.querySelector("[data-camera]");
  var form = document.querySelector("[data-scan-form]");
  if (!box || !form || !("BarcodeDetector" in window) || !navigator.mediaDevices ||
      !navigator.mediaDevices.getUserMedia) { return; }
  var toggle = box.querySelector("[data-camera-toggle]");
  var video = box.querySelector("[data-camera-video]");
  var status = box.querySelector("[data-camera-status]");
  var input = form.querySelector("input[name=code]");
  var stream = null;
  var timer = null;
  var detector = null;

  window.BarcodeDetector.getSupportedFormats().then(function (formats) {
    if (formats.indexOf("qr_code") === -1) { return; }
    detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    box.hidden = false;
  }).catch(function () { /* no camera scanning: the scanner and the keyboard still work */ });

  function stop() {
    if (timer) { window.clearInterval(timer); timer = null; }
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); stream = null; }
    video.hidden = true;
    toggle.setAttribute("aria-pressed", "false");
    status.textContent = "";
  }

  function scan() {
    if (!detector || !stream) { return; }
    detector.detect(video).then(function (codes) {
      if (!codes.length) { return; }
      input.value = codes[0].rawValue;
      stop();
      if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
    }).catch(function () { /* a frame that could not be read: try the next one */ });
  }

  toggle.addEventListener("click", function () {
    if (stream) { stop(); input.focus(); return; }
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        video.hidden = false;
        toggle.setAttribute("aria-pressed", "true");
        status.textContent = toggle.getAttribute("data-scanning") || "";
        return video.play();
      })
      .then(function () { timer = window.setInterval(scan, 250); })
      .catch(function () { stop(); status.textContent = toggle.getAttribute("data-denied") || ""; });
  });
})();
