"""The ``inficond`` command line: a thin layer over the Python API (prepare, Session, serve)."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from inficond.exceptions import InficondError


def _print(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _encoder_kwargs(a) -> dict:
    """The ``--clip-*`` options as open_clip encoder arguments (refused for other encoders)."""
    from inficond.exceptions import DataError

    clip = {"model_name": a.clip_model, "pretrained": a.clip_weights, "config": a.clip_config}
    given = [f"--{k.replace('_', '-')}" for k in ("clip_model", "clip_weights", "clip_config") if getattr(a, k)]
    if a.encoder != "open_clip":
        if given:
            raise DataError(f"{', '.join(given)} only apply to --encoder open_clip, not {a.encoder!r}")
        return {}
    if a.clip_weights is None:  # refused before any folder is made; random weights stay a Python test option
        from inficond.encoders.open_clip_encoder import weights_help

        raise DataError(f"--encoder open_clip needs trained weights: {weights_help(a.clip_model or 'ViT-B-32')}")
    return {k: v for k, v in clip.items() if v is not None}


def cmd_prepare(a) -> None:
    import atexit
    import gc

    from inficond.prepare import prepare

    # The interpreter's last garbage collections walk every object torch, sklearn and the models
    # made: 1-2 s of a `prepare --limit 24` after its work was done. Freezing them at exit skips
    # that walk; the objects are still freed and every atexit handler still runs.
    atexit.register(gc.freeze)
    rep = prepare(
        a.data, a.out, encoder=a.encoder, encoder_kwargs=_encoder_kwargs(a), teacher=a.teacher, corpus=a.corpus,
        limit=a.limit, batch_size=a.batch_size, test_fraction=a.test_fraction, seed=a.seed,
        ray=a.ray, ray_workers=a.ray_workers,
    )
    d = rep.to_dict()
    print(
        f"workspace {d['workspace']}: {d['n_done']}/{d['n_images']} images done, {d['n_corrupt']} corrupt, "
        f"{d['n_concepts']} concepts; {d['n_processed_now']} processed now in {d['seconds']} s "
        f"({d['images_per_second']} img/s)"
    )
    for iid, why in d["corrupt"] + d["skipped"]:
        print(f"  skipped {iid}: {why}")
    for name, why in d["excluded_classes"].items():
        print(f"  class {name} excluded from mean metrics: {why}")


def cmd_distill(a) -> None:
    from inficond.session import Session

    out = Session(a.workspace).distill(lam=a.lam, max_concepts=a.max_concepts, solver=a.solver)
    lam = out.pop("lam")
    _print(out)
    print(f"lam per class: min {min(lam):.3g}, max {max(lam):.3g}")


def cmd_performance(a) -> None:
    from inficond.session import Session

    perf = Session(a.workspace).performance(a.split)
    fmt = lambda v, d=3: "   -   " if v is None else f"{v:.{d}f}"  # noqa: E731
    print(f"{a.split}: teacher mAP {fmt(perf['teacher_map'], 4)}  student mAP {fmt(perf['student_map'], 4)}"
          + ("  (no class has enough positives on this split to score)" if perf["teacher_map"] is None else ""))
    print(f"{'class':<14}{'teacher AP':>11}{'student AP':>11}{'gap':>8}{'fidelity':>9}")
    for c in sorted(perf["classes"], key=lambda c: -(c["gap"] or -9)):
        flag = f"  (excluded: {c['reason']})" if c["excluded"] else ""
        print(f"{c['name']:<14}{fmt(c['teacher']['ap']):>11}{fmt(c['student']['ap']):>11}"
              f"{fmt(c['gap']):>8}{c['fidelity']:>9.3f}{flag}")


def cmd_concepts(a) -> None:
    from inficond.session import Session

    out = Session(a.workspace).class_concepts(a.cls, k=a.k, sort=a.sort)
    print(f"{out['name']}: val AP {out['ap']:.4f}, {out['nonzero']} non-zero concepts; top {a.k} by {a.sort}")
    for c in out["concepts"]:
        print(f"{c['rank']:>3}. {c['word']:<24} influence {c['influence']:+.3f}  "
              f"disc P {c['discrepancy_p']:+.3f}  disc N {c['discrepancy_n']:+.3f}")


def cmd_tune(a) -> None:
    from inficond.session import Session

    ins = [{"class": a.cls, "concept": c, "direction": "up"} for c in a.up]
    ins += [{"class": a.cls, "concept": c, "direction": "down"} for c in a.down]
    _print(Session(a.workspace).tune(ins, erase=a.erase))


def cmd_whatif(a) -> None:
    from inficond.session import Session

    _print(Session(a.workspace).whatif(a.cls, a.concept, n_points=a.points))


def cmd_suggest(a) -> None:
    from inficond.session import Session

    _print(Session(a.workspace).suggest(a.cls, k=a.k, shortcuts=a.shortcuts))


def cmd_provenance(a) -> None:
    from inficond.session import Session

    s = Session(a.workspace)
    out = s.undo() if a.undo else s.revert(a.revert) if a.revert is not None else s.provenance()
    _print(out)


def cmd_add_concepts(a) -> None:
    from inficond.concepts import load_corpus
    from inficond.session import Session

    words = list(a.words)
    if a.file:
        words += [w.word for w in load_corpus(a.file)]
    _print(Session(a.workspace).add_concepts(words))


def cmd_detail(a) -> None:
    from inficond.session import Session

    _print(Session(a.workspace).concept_detail(a.concept, cls=a.cls))


def cmd_export(a) -> None:
    from inficond.session import Session

    _print(Session(a.workspace).export(a.out))


def cmd_predict(a) -> None:
    from inficond.predict import predict_images

    rows = predict_images(a.student, a.images, top=a.top)
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=2))
    for r in rows:
        if "error" in r:
            print(f"{r['image']}: skipped ({r['error']})")
            continue
        labels = ", ".join(f"{p['class']} {p['probability']:.2f}" for p in r["positive"]) or "(no class)"
        print(f"{r['image']}: {labels}")
        for p in r["positive"]:
            print("    " + p["class"] + ": " + ", ".join(f"{c['word']} {c['contribution']:+.2f}" for c in p["concepts"]))


def _md5_arg(value: str) -> str:
    v = value.strip().lower()
    if len(v) != 32 or any(c not in "0123456789abcdef" for c in v):
        raise argparse.ArgumentTypeError(f"an MD5 is 32 hex digits, got {value!r}")
    return v


def cmd_download(a) -> None:
    from inficond.download import ARCHIVES, download_dataset

    spec = ARCHIVES.get(a.dataset)
    if spec is not None:
        print(f"{spec.about}\n  from {a.url or spec.url}" + (f" ({spec.size / 1e9:.2f} GB)" if spec.size and not a.url else ""))
    root = download_dataset(a.dataset, a.dir, url=a.url, md5=a.md5, keep_archive=not a.delete_archive)
    print(f"data ready in {root}\nnext: inficond prepare --data {root} --out WORKSPACE")


def cmd_report(a) -> None:
    from inficond.report import write_class_report

    path = write_class_report(a.workspace, a.cls, a.out, k=a.k)
    print(f"report of {a.cls} written to {path} ({path.stat().st_size / 1024:.0f} KiB, self-contained)")


def cmd_serve(a) -> None:
    from inficond.server import serve

    serve(a.workspace, host=a.host, port=a.port, token=a.token, open_browser=a.open)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inficond", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("prepare", help="build or resume a workspace from a dataset")
    s.add_argument("--data", help="dataset folder (CSV, VOC or COCO layout); default $INFICOND_DATA")
    s.add_argument("--out", required=True, help="workspace folder")
    s.add_argument("--encoder", default="conse-effnet", help="conse-effnet (offline default) | open_clip")
    s.add_argument("--clip-model", help="open_clip architecture, e.g. ViT-B-32 (default; ViT models only)")
    s.add_argument("--clip-weights", metavar="TAG|FILE",
                   help="open_clip pretrained tag (downloaded by open_clip when online) or a local checkpoint file; "
                        "required with --encoder open_clip")
    s.add_argument("--clip-config", metavar="JSON", help="open_clip model-config JSON for an architecture open_clip "
                                                        "does not ship (--clip-model defaults to its file name)")
    s.add_argument("--teacher", default="effnet-lite2", help="effnet-lite2 | file:PATH | onnx:PATH | torch:PATH.pt")
    s.add_argument("--corpus", help="concept words (.txt or .json); default: the built-in corpus")
    s.add_argument("--limit", type=int, help="first N images of each split only")
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--test-fraction", type=float, default=0.15)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run the batches on Ray Data: alone, a Ray instance on this machine; with ADDRESS "
                        "(host:port or auto), that cluster (same arrays as without --ray)")
    s.add_argument("--ray-workers", type=int, metavar="N", help="Ray workers, one CPU each (default: all the cluster's CPUs)")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("distill", help="fit the sparse students on the train split")
    s.add_argument("workspace")
    s.add_argument("--lam", type=float, help="L1 strength (default: chosen from --max-concepts)")
    s.add_argument("--max-concepts", type=int, default=100, help="sparsity target per class")
    s.add_argument("--solver", default="cd", help="cd (exact, default) | fista | lbfgsb | adam-paper (the paper's recipe)")
    s.set_defaults(func=cmd_distill)

    s = sub.add_parser("performance", help="teacher vs student metrics per class")
    s.add_argument("workspace")
    s.add_argument("--split", default="val", choices=["train", "val", "test"])
    s.set_defaults(func=cmd_performance)

    s = sub.add_parser("concepts", help="a class's top concepts")
    s.add_argument("workspace")
    s.add_argument("cls", metavar="CLASS")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--sort", default="influence", choices=["influence", "discrepancy_p", "discrepancy_n"])
    s.set_defaults(func=cmd_concepts)

    s = sub.add_parser("tune", help="uptune/downtune concepts of one class (one provenance step)")
    s.add_argument("workspace")
    s.add_argument("cls", metavar="CLASS")
    s.add_argument("--up", nargs="*", default=[], metavar="CONCEPT")
    s.add_argument("--down", nargs="*", default=[], metavar="CONCEPT")
    s.add_argument("--erase", action="store_true",
                   help="downvotes also remove what the teacher's logits owe to those concepts (for a shortcut)")
    s.set_defaults(func=cmd_tune)

    s = sub.add_parser("whatif", help="metrics as one concept's influence is swept")
    s.add_argument("workspace")
    s.add_argument("cls", metavar="CLASS")
    s.add_argument("concept")
    s.add_argument("--points", type=int, default=21)
    s.set_defaults(func=cmd_whatif)

    s = sub.add_parser("suggest", help="votes that would raise AP on train most, and suspected shortcuts")
    s.add_argument("workspace")
    s.add_argument("cls", metavar="CLASS")
    s.add_argument("-k", type=int, default=5)
    s.add_argument("--shortcuts", type=int, default=5,
                   help="suspected shortcuts to score as erase-downvotes (kind 'shortcut'; apply with tune --erase)")
    s.set_defaults(func=cmd_suggest)

    s = sub.add_parser("provenance", help="tuning history; --undo or --revert STATE")
    s.add_argument("workspace")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--undo", action="store_true")
    g.add_argument("--revert", type=int, metavar="STATE")
    s.set_defaults(func=cmd_provenance)

    s = sub.add_parser("add-concepts", help="add concept words (text encoded only)")
    s.add_argument("workspace")
    s.add_argument("words", nargs="*")
    s.add_argument("--file", help=".txt or .json corpus file")
    s.set_defaults(func=cmd_add_concepts)

    s = sub.add_parser("detail", help="a concept's top images, patches and classes")
    s.add_argument("workspace")
    s.add_argument("concept")
    s.add_argument("--cls", metavar="CLASS")
    s.set_defaults(func=cmd_detail)

    s = sub.add_parser("export", help="export the current student (JSON + ONNX)")
    s.add_argument("workspace")
    s.add_argument("--out")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("predict", help="label new images with an exported student")
    s.add_argument("student", help="student.json from `inficond export`")
    s.add_argument("images", nargs="+", help="image files or folders")
    s.add_argument("--top", type=int, default=3, help="contributing concepts shown per label")
    s.add_argument("--out", help="write the predictions as JSON here")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("download", help="fetch, verify and extract a public dataset (resumable)")
    s.add_argument("dataset", choices=["voc2012"])
    s.add_argument("dir", help="folder for the archive and the extracted data")
    s.add_argument("--url", help="a mirror of the same archive")
    s.add_argument("--md5", type=_md5_arg, help="expected MD5 (default: the registered one)")
    s.add_argument("--delete-archive", action="store_true", help="delete the archive after extracting it")
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("report", help="a class's student as one self-contained HTML file")
    s.add_argument("workspace")
    s.add_argument("cls", metavar="CLASS")
    s.add_argument("--out", help="HTML file (default WS/reports/CLASS.html)")
    s.add_argument("-k", type=int, default=10, help="top concepts shown")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("serve", help="open the web app on a workspace")
    s.add_argument("workspace")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to bind; requests must name it or a loopback name in their Host header")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--token", help="required when --host is not local (generated when not given); clients send it "
                                   "as the X-Inficond-Token header, browsers get a cookie from the printed URL")
    s.add_argument("--open", action="store_true", help="open a browser")
    s.set_defaults(func=cmd_serve)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    # An older workspace is worth a plain one-line notice, not a Python warning with a source line.
    if category.__name__ == "OutdatedWorkspaceWarning":
        print(f"inficond: notice: {message}", file=sys.stderr, flush=True)
    else:
        _default(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        args.func(args)
    except InficondError as e:
        print(f"inficond {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"inficond {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
