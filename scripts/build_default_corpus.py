"""Build ``src/inficond/concepts/default_corpus.txt`` from Broden's label list.

The paper's 584-concept corpus draws on Broden's (Network Dissection) concepts; Broden's
object category alone has 584 labels. Broden mixes six categories:
objects, parts, scenes, materials, textures and colours. A student's concepts should be things
that can be pointed at in a region, so this script keeps **objects and parts** and drops the rest:

* colours: Broden marks them ``-c`` (``red-c``);
* scenes: Places names, ``-`` joined when they have a qualifier (``brewery-outdoor``) and the
  plain ones listed in ``SCENES`` below;
* textures: the 47 DTD words (``flecked``, ``striped``, ...) in ``TEXTURES``;
* materials that are not also objects (``granite``, ``painted``, ...) in ``MATERIALS``. Materials
  that are Broden objects too (``fur``, ``wood``, ``glass``) stay.

Then it merges spellings of one thing (``fire place``/``fireplace``, ``curtains``/``curtain``),
respells the PASCAL-style joined words (``tvmonitor`` -> ``tv monitor``) and adds the few words
listed in ``ADDITIONS`` (VOC class names Broden spells differently). A few ambiguous words get a
prompt (the text that is encoded, e.g. ``mouse`` -> ``computer mouse``, the Broden part).

Every list entry is checked against the Broden file, and every Broden label must be either kept
or dropped by one rule, so a new or changed Broden file fails loudly instead of silently
changing the corpus.

Usage::

    python scripts/build_default_corpus.py ../shared/data/corpora/broden_labels_clean.txt
    python scripts/build_default_corpus.py BRODEN.txt --out other.txt --check   # compare only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BRODEN = REPO.parent / "shared" / "data" / "corpora" / "broden_labels_clean.txt"
DEFAULT_OUT = REPO / "src" / "inficond" / "concepts" / "default_corpus.txt"

# The Describable Textures Dataset's 47 categories, Broden's texture category.
TEXTURES = """
banded blotchy braided bubbly bumpy chequered cobwebbed cracked crosshatched crystalline dotted
fibrous flecked freckled frilly gauzy grooved honeycombed interlaced knitted lacelike lined marbled
matted meshed paisley perforated pitted pleated polka-dotted porous potholed scaly smeared spiralled
sprinkled stained stratified striped studded swirly veined waffled woven wrinkled zigzagged
""".split()
# "grid" is a DTD texture too, but Broden also files it as an object; objects win.

# Broden materials (OpenSurfaces) that are not Broden objects or parts.
MATERIALS = ["painted", "granite", "ceramic", "laminate", "wallpaper", "skin", "wicker", "concrete",
             "rubber", "foliage", "linoleum", "plastic-opaque", "plastic-clear"]

# Places scene names without a "-" qualifier (those with one are dropped by rule).
SCENES = [
    "abbey", "access road", "air base", "airplane cabin", "airport", "airport terminal", "airport ticket counter",
    "alcove", "alley", "amphitheater", "amusement arcade", "amusement park", "anechoic chamber", "aquatic theater",
    "arcade", "archaelogical excavation", "archive", "art gallery", "art school", "art studio", "artists loft",
    "assembly line", "attic", "auditorium", "auto factory", "auto showroom", "backstairs", "baggage claim",
    "ball pit", "ballroom", "bank vault", "banquet hall", "barbershop", "barn", "barnyard", "baseball field",
    "basement", "bathroom", "batters box", "bayou", "beach", "beach house", "beauty salon", "bedchamber",
    "bedroom", "beer garden", "boathouse", "bog", "bookstore", "botanical garden", "boxing ring",
    "building complex", "building facade", "bullpen", "bus interior", "bus shelter", "bus stop", "butchers shop",
    "butte", "cabana", "cafeteria", "call center", "campsite", "campus", "candy store", "canteen", "canyon",
    "car dealership", "cardroom", "cargo container interior", "carrousel", "castle", "catacomb", "cemetery",
    "chalet", "chapel", "cheese factory", "childs room", "classroom", "clean room", "cliff", "closet",
    "clothing store", "coast",
    "coffee shop", "computer room", "conference center", "conference room", "construction site", "corn field",
    "corral", "corridor", "cottage", "cottage garden", "courthouse", "courtroom", "courtyard", "creek", "crevasse",
    "dacha", "day care center", "delicatessen", "dentists office", "dining car", "dining hall", "dining room",
    "dolmen", "donjon", "dorm room", "downtown", "drainage ditch", "driveway", "dugout", "earth fissure",
    "elevator lobby", "elevator shaft", "embankment", "embassy", "estuary", "excavation", "fairway", "farm",
    "fastfood restaurant", "field road", "fire station", "fishpond", "fjord", "flood", "food court",
    "football field", "forecourt", "forest path", "forest road", "formal garden", "fort", "freeway",
    "funeral chapel", "galley", "game room", "ghost town", "gift shop", "golf course", "granary", "guardhouse",
    "gulch", "hacienda", "hallway", "harbor", "hat shop", "hayfield", "hedge maze", "heliport", "herb garden",
    "highway", "home office", "home theater", "hoodoo", "hospital", "hospital room", "hot spring",
    "hotel breakfast area", "hotel room", "ice cream parlor", "imaret", "industrial area", "industrial park",
    "irrigation ditch", "islet", "jail cell", "japanese garden", "jewelry shop", "joss house", "junk pile",
    "junkyard", "kasbah", "kindergarden classroom", "kitchen", "kitchenette", "lagoon", "landing", "landing deck",
    "laundromat", "lecture room", "lift bridge", "limousine interior", "living room", "loading dock", "lobby",
    "locker room", "mansion", "manufactured home", "marsh", "martial arts gym", "mausoleum", "medina",
    "military hut", "mine", "mission", "moon bounce", "moor", "motel", "mountain path", "mountain road",
    "mountain snowy", "music studio", "natural history museum", "nunnery", "nursery", "oasis", "oast house",
    "ocean", "office", "office building", "operating room", "orchard", "pagoda", "palace", "park", "parlor",
    "pasture", "playroom", "plaza", "quadrangle", "ranch", "ranch house", "reading room", "reception",
    "restaurant", "restaurant patio", "road cut", "rope bridge", "ruin", "sacristy", "sandbar", "sauna",
    "savanna", "shoe shop", "shopfront", "shore", "signal box", "ski resort", "ski slope", "slum", "snowfield",
    "staircase", "street", "student residence", "subway interior", "sun deck", "supermarket", "tearoom",
    "television studio", "terrace", "throne room", "topiary garden", "town house", "toyshop", "utility room",
    "vegetable garden", "videostore", "waiting room", "water mill", "watering hole", "wet bar", "wheat field",
    "window seat", "workshop", "yard", "youth hostel", "zen garden",
]

# Objects whose label does not say what it is: left out rather than guessed.
UNCLEAR = {"safety side": "Broden object with no clear visual meaning", "system": "too generic to ground",
           "blind": "kept as 'blinds' (window blinds); 'blind' alone also means a person"}

# One thing, two spellings: the second is dropped in favour of the first.
MERGE = {
    "fire place": "fireplace", "door frame": "doorframe", "doors": "door", "curtains": "curtain",
    "tables": "table", "barrels": "barrel", "breads": "bread", "shops": "shop", "tracks": "track",
    "clouds": "cloud", "brushes": "brush", "metal shutters": "metal shutter",
}

# PASCAL-style joined words respelled as words; Broden's singular 'trouser' as the usual plural.
RESPELL = {"tvmonitor": "tv monitor", "pottedplant": "potted plant", "trouser": "trousers"}

# Not Broden labels: VOC class names that Broden spells otherwise ('airplane', 'table').
ADDITIONS = ["aeroplane", "dining table"]

# Encoded text for words with a more common other meaning (Broden means the one given here).
PROMPTS = {
    "mouse": "computer mouse", "screen": "display screen", "monitor": "computer monitor",
    "glass": "drinking glass", "palm": "palm tree", "pitch": "sports pitch", "plant": "green plant",
    "crane": "construction crane", "trunk": "tree trunk", "pack": "backpack", "bar": "bar counter",
    "ad": "advertisement", "text": "printed text", "coach": "railway coach", "shade": "lamp shade",
    "back": "backrest of a seat", "blade": "blade of a fan or knife", "plane": "airplane",
    "tap": "water tap", "case": "display case", "board": "wooden board", "controls": "control panel",
    "player": "sports player", "can": "tin can", "pot": "cooking pot", "fan": "electric fan",
    "ball": "toy ball", "counter": "kitchen counter", "plate": "dinner plate", "ring": "ring jewellery",
    "scale": "weighing scale", "hen": "hen, a chicken", "organ": "pipe organ",
}

HEADER = """\
# InFiConD default concept corpus: Broden's object and part labels (Network Dissection,
# Bau et al. 2017), a source of the InFiConD paper's 584-concept corpus. Generated by
# scripts/build_default_corpus.py from broden_labels_clean.txt; edit that script, not this file.
# Scenes, textures, colours and material-only labels are left out; see the script for the lists.
# One concept a line: `word` or `word<TAB>prompt` (the prompt is the text that gets encoded).
"""


def read_labels(path: Path) -> list[str]:
    labels = [" ".join(line.split()) for line in path.read_text(encoding="utf-8").splitlines()]
    return [w for w in labels if w]


def build(labels: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """The kept words (sorted, respelled, additions appended) and the dropped labels by reason."""
    present = set(labels)
    listed = {"texture": TEXTURES, "material": MATERIALS, "scene": SCENES, "unclear": list(UNCLEAR),
              "merge": list(MERGE) + list(MERGE.values()), "respell": list(RESPELL)}
    missing = {k: [w for w in v if w not in present] for k, v in listed.items()}
    missing = {k: v for k, v in missing.items() if v}
    if missing:
        raise SystemExit(f"listed labels not in the Broden file (typo or another Broden version?): {missing}")
    if any(w in present for w in ADDITIONS):
        raise SystemExit(f"an addition is already a Broden label: {[w for w in ADDITIONS if w in present]}")

    dropped: dict[str, list[str]] = {"colour": [], "scene": [], "texture": [], "material": [], "unclear": [],
                                     "merged": [], "duplicate": []}
    texture, material, scene = set(TEXTURES), set(MATERIALS), set(SCENES)
    kept: list[str] = []
    seen: set[str] = set()
    for w in labels:
        if w.endswith("-c"):
            dropped["colour"].append(w)
        elif "-" in w and w not in ("horse-drawn carriage", "check-in-desk"):  # hyphenated objects
            dropped["scene"].append(w)
        elif w in scene:
            dropped["scene"].append(w)
        elif w in texture:
            dropped["texture"].append(w)
        elif w in material:
            dropped["material"].append(w)
        elif w in UNCLEAR:
            dropped["unclear"].append(w)
        elif w in MERGE:
            dropped["merged"].append(w)
        elif w in seen:
            dropped["duplicate"].append(w)  # Broden names an object and a scene alike (e.g. 'tower')
        else:
            seen.add(w)
            kept.append(RESPELL.get(w, w))
    words = sorted(kept) + ADDITIONS
    return words, {k: sorted(set(v)) for k, v in dropped.items()}


def render(words: list[str]) -> str:
    lines = [HEADER]
    for w in words:
        lines.append(f"{w}\t{PROMPTS[w]}" if w in PROMPTS and PROMPTS[w] != w else w)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("broden", nargs="?", default=str(DEFAULT_BRODEN), help="broden_labels_clean.txt (read in place)")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--check", action="store_true", help="only say whether --out is up to date (exit 1 if not)")
    a = ap.parse_args(argv)
    src = Path(a.broden)
    if not src.is_file():
        print(f"Broden label file {src} not found; pass its path", file=sys.stderr)
        return 2
    words, dropped = build(read_labels(src))
    text = render(words)
    out = Path(a.out)
    summary = f"{len(words)} words ({len(ADDITIONS)} additions); dropped " + ", ".join(
        f"{len(v)} {k}" for k, v in dropped.items())
    if a.check:
        same = out.is_file() and out.read_text(encoding="utf-8") == text
        print(f"{out}: {'up to date' if same else 'differs from a fresh build'}; {summary}")
        return 0 if same else 1
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
