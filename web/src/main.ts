import { selectStartClass } from "./lib/start";
import "./app.css";

// Choose the class and ask for its concepts while the views' script still loads and runs.
selectStartClass();
import("./App.svelte").then(({ default: App }) => import("svelte").then(({ mount }) => {
  mount(App, { target: document.getElementById("app")! });
}));
