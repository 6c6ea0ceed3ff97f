/* Pre-screen pages: small conveniences on top of forms that work without JavaScript.
   - a danger sign ticked shows "go to emergency now" at once, before the form is sent;
   - pregnancy questions only for women, the baby's age in days only for age 0;
   - "None of these" and the exposure answers exclude each other;
   - the pass page gets a Print button. */
(function () {
  "use strict";

  function show(el, visible) {
    if (!el) { return; }
    // Never hide a field that carries an error message.
    if (!visible && el.querySelector(".has-error, .error")) { visible = true; }
    el.hidden = !visible;
  }

  var form = document.getElementById("prescreen-form");
  if (form) {
    var stop = document.getElementById("stop-now");
    var danger = form.querySelectorAll(".pt-danger-list input[type=checkbox]");
    var updateDanger = function () {
      var any = Array.prototype.some.call(danger, function (box) { return box.checked; });
      show(stop, any);
      if (any && stop && !stop.dataset.shown) {
        stop.dataset.shown = "1";
        stop.scrollIntoView({ block: "center", behavior: "smooth" });
      }
      if (!any && stop) { delete stop.dataset.shown; }
    };
    Array.prototype.forEach.call(danger, function (box) { box.addEventListener("change", updateDanger); });
    updateDanger();

    var pregnancy = document.getElementById("pregnancy");
    var updateSex = function () {
      var male = form.querySelector("input[name=sex][value=M]:checked");
      show(pregnancy, !male);
    };
    Array.prototype.forEach.call(form.querySelectorAll("input[name=sex]"), function (radio) {
      radio.addEventListener("change", updateSex);
    });
    updateSex();

    var age = document.getElementById("age_years");
    var baby = form.querySelector(".pt-baby");
    var updateAge = function () {
      show(baby, age && age.value.trim() === "0");
    };
    if (age) { age.addEventListener("input", updateAge); updateAge(); }

    var epi = form.querySelectorAll("input[name=epi]");
    Array.prototype.forEach.call(epi, function (box) {
      box.addEventListener("change", function () {
        if (!box.checked) { return; }
        Array.prototype.forEach.call(epi, function (other) {
          if (other !== box && (box.value === "none" || other.value === "none")) { other.checked = false; }
        });
      });
    });
  }

  var print = document.getElementById("print-pass");
  if (print) {
    print.hidden = false;
    print.addEventListener("click", function () { window.print(); });
  }
}());
