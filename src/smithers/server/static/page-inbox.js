/* #/inbox — every pending approval, human task and awaited signal, across runs, each with its form. */
import { setNav } from "./chrome.js";
import { fill, h } from "./dom.js";
import { itemForm, itemsKey } from "./forms.js";
import { onInbox, refreshInbox } from "./inbox-feed.js";

export function InboxPage(app) {
  let alive = true;
  let shownKey = null;
  const box = h("div", { id: "inbox" });
  fill(app, h("h1", null, "Inbox"), h("p", { class: "muted" }, "Everything a run is waiting for a person to decide or send."), box);
  setNav("inbox");

  function decided() {
    shownKey = null;
    refreshInbox();
  }

  function draw(items) {
    if (itemsKey(items) === shownKey) return; // redraw only when the items change: typing is never interrupted
    shownKey = itemsKey(items);
    if (!items.length) fill(box, h("section", { class: "panel empty" }, "Nothing is waiting for you."));
    else fill(box, items.map((item) => h("section", { class: "panel waiting" }, itemForm(item, decided, { showRun: true }))));
  }

  const stop = onInbox(draw);
  refreshInbox().then((items) => { if (alive) draw(items); });
  return { unmount() { alive = false; stop(); } };
}
