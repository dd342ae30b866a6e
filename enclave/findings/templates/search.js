// Filters the list of findings as the reader types; the page works without it.
(function () {
  var box = document.getElementById("search");
  var count = document.getElementById("count");
  if (!box) { return; }
  var items = Array.prototype.slice.call(document.querySelectorAll("li.finding"));
  box.addEventListener("input", function () {
    var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    items.forEach(function (li) {
      var text = li.getAttribute("data-text") || "";
      var hit = words.every(function (w) { return text.indexOf(w) !== -1; });
      li.hidden = !hit;
      if (hit) { shown += 1; }
    });
    count.textContent = shown + (shown === 1 ? " finding" : " findings");
  });
})();
