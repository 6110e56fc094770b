// storebridge console: two small behaviours, no library.
// 1. <form data-confirm="question"> asks before submitting (inline handlers are blocked by the CSP).
// 2. <body data-refresh="N"> reloads the page every N seconds while it is visible (unfinished work).
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("DOMContentLoaded", function () {
  var seconds = parseFloat(document.body.getAttribute("data-refresh") || "");
  if (seconds > 0) {
    window.setTimeout(function reload() {
      if (document.visibilityState === "visible") {
        window.location.reload();
      } else {
        window.setTimeout(reload, seconds * 1000);
      }
    }, seconds * 1000);
  }
});
