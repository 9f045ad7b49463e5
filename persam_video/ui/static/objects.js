// One object's row in a page's object list (video page and photo page alike): the id, its palette
// colour as a swatch, and the "selected" mark; each page appends its own controls after the swatch.
function objectRow(object, selectedId) {
  const item = document.createElement("li");
  item.dataset.id = object.id;
  item.className = object.id === selectedId ? "selected" : "";
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = object.colour;
  item.append(swatch);
  return item;
}
