import { selectStartClass } from "./lib/start";
import "./app.css";

// Choose the class and ask for its concepts while the views' script still loads and runs.
const ready = selectStartClass().then(() => { performance.mark("inficond:data"); });
// Mount once the first render's answers are in, so it is drawn complete in one frame; a slow
// server still gets the views with their loading states after MOUNT_WAIT_MS.
const MOUNT_WAIT_MS = 600;
const waited = Promise.race([ready, new Promise((r) => setTimeout(r, MOUNT_WAIT_MS))]);
Promise.all([import("./App.svelte"), import("svelte"), waited]).then(([{ default: App }, { mount }]) => {
  performance.mark("inficond:mount-start");
  mount(App, { target: document.getElementById("app")! });
  performance.mark("inficond:mount-end");
});
