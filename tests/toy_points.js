// The playground panel of the toy "points" kind of content (tests/toy_points.py): n points of a class, drawn by
// POST /v1/points and listed. It uses only the page's plug-in point (window.tetragenPlayground).
"use strict";

window.tetragenPlayground.addPanel({
  id: "points", label: "Points", makes: "points", wants: ["sample"],
  describe: (card) => `a class name (${card.classes.length} classes) → 2-D points`,
  build(form, kit) {
    form.innerHTML = `<label class="field">n<input id="points-n" type="number" min="1" value="5"></label>
      <label class="field">class<input id="points-label" type="text" value="east"></label>
      <div class="actions"><button id="points-draw" type="submit">Draw points</button></div>
      <pre id="points-out" class="output"></pre>`;
    form.addEventListener("submit", kit.onSubmit(async () => {
      const body = {model: kit.model().id, n: Number(form.querySelector("#points-n").value),
                    label: form.querySelector("#points-label").value, seed: 1};
      const doc = await (await kit.call("POST", "/v1/points", body)).json();
      form.querySelector("#points-out").textContent =
        doc.points.map((p) => p.map((v) => v.toFixed(3)).join(", ")).join("\n");
    }));
  },
});
