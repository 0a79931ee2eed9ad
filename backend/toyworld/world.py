"""The fictional world: seeded entities (people, places, organisations, events) and their attributes.

Pure Python and deterministic for a seed. Names are built from syllables; every name belongs to exactly one
split, decided by a stable hash (`split_of`), so the training corpus and the held-out evaluation split never
share an entity. The "core" training world (fixed, `core_world()`) is what closed-book questions ask about;
every other generator draws fresh ("ephemeral") entities of its split, so answers must come from the prompt.

Glossary: Person(name, birth_year, home_city, occupation, colour, employer), Place(name, population, region,
founded, flag_colour), Org(name, founder, founded, city, product), Event(name, year, city, organiser).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

SPLITS = ("train", "eval")

_ONSETS = ["b", "br", "c", "d", "dr", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p", "r", "s", "st",
           "t", "th", "v", "w", "z", "sh", "kel", "mor", "tal", "ver"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "y"]
_CODAS = ["", "", "n", "r", "l", "s", "th", "m", "x", "nd", "rk"]
_PLACE_SUFFIX = ["mere", "ford", "holm", "ton", "wick", "dale", "port", "by", "stead", "gard", "burg", "vale"]
_ORG_ADJ = ["Silver", "Golden", "Northern", "Quiet", "Bright", "Iron", "Copper", "Hidden", "Royal", "Green",
            "Old", "Swift", "Crimson", "Amber", "Lunar", "Velvet"]
_ORG_NOUN = ["Lantern", "Anchor", "Harbour", "Oak", "Falcon", "Bridge", "Compass", "Kettle", "Mill", "Tower",
             "Feather", "Wheel", "Garden", "Bell", "Arrow", "Forge"]
_ORG_KIND = ["Company", "Guild", "Works", "Society", "Trading House", "Press", "Foundry", "Bank"]
_EVENT_KIND = ["Festival", "Fair", "Regatta", "Flood", "Great Fire", "Treaty", "Games", "Exhibition"]

OCCUPATIONS = ["baker", "carpenter", "sailor", "teacher", "doctor", "painter", "farmer", "merchant", "poet",
               "engineer", "astronomer", "weaver", "blacksmith", "librarian", "musician", "gardener"]
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black", "grey", "brown"]
REGIONS = ["the north", "the south", "the east", "the west", "the highlands", "the coast", "the valley",
           "the islands"]
PRODUCTS = ["clocks", "ships", "bread", "books", "lamps", "bicycles", "maps", "glass", "rope", "tea", "paper",
            "violins"]


def split_of(name: str) -> str:
    """Stable split of a name: about one name in four belongs to the evaluation split."""
    return "eval" if zlib.crc32(name.lower().encode()) % 4 == 0 else "train"


def _word(rng: random.Random, n_syll: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n_syll - 1)) + (
        rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS))


def _named(rng: random.Random, split: str, make, used: set[str]) -> str:
    for _ in range(1000):
        name = make()
        if split_of(name) == split and name not in used:
            used.add(name)
            return name
    raise RuntimeError("could not draw a fresh name; lower the number of entities")


@dataclass
class Place:
    name: str
    population: int
    region: str
    founded: int
    flag_colour: str
    kind: str = "place"


@dataclass
class Org:
    name: str
    founder: str
    founded: int
    city: str
    product: str
    kind: str = "org"


@dataclass
class Person:
    name: str
    birth_year: int
    home_city: str
    occupation: str
    colour: str
    employer: str
    kind: str = "person"


@dataclass
class Event:
    name: str
    year: int
    city: str
    organiser: str
    kind: str = "event"


@dataclass
class World:
    split: str
    places: list[Place] = field(default_factory=list)
    orgs: list[Org] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def entities(self) -> list:
        return [*self.people, *self.places, *self.orgs, *self.events]

    def names(self) -> set[str]:
        return {e.name for e in self.entities()}


def make_world(split: str, seed: int, n_people: int = 40, n_places: int = 12, n_orgs: int = 10,
               n_events: int = 6, used: set[str] | None = None) -> World:
    """A self-consistent world of one split: people live in its places, work for its orgs, and so on."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = random.Random(f"world:{split}:{seed}")
    used = set() if used is None else used
    w = World(split)

    def cap(s: str) -> str:
        return s[:1].upper() + s[1:]

    for _ in range(n_places):
        name = _named(rng, split, lambda: cap(_word(rng, rng.randint(1, 2)) + rng.choice(_PLACE_SUFFIX)), used)
        w.places.append(Place(name, rng.randint(2, 900) * rng.choice([10, 100, 1000]) + rng.randint(0, 99),
                              rng.choice(REGIONS), rng.randint(900, 1800), rng.choice(COLOURS)))
    first_names: list[str] = []
    for _ in range(n_people):
        first = cap(_word(rng, rng.randint(1, 2)))
        name = _named(rng, split, lambda f=first: f"{f} {cap(_word(rng, 2))}", used)
        first_names.append(name)
    for _ in range(n_orgs):
        name = _named(rng, split, lambda: f"the {rng.choice(_ORG_ADJ)} {rng.choice(_ORG_NOUN)} "
                                          f"{rng.choice(_ORG_KIND)}", used)
        w.orgs.append(Org(name, rng.choice(first_names), rng.randint(1750, 1990), rng.choice(w.places).name,
                          rng.choice(PRODUCTS)))
    for name in first_names:
        w.people.append(Person(name, rng.randint(1700, 2000), rng.choice(w.places).name,
                               rng.choice(OCCUPATIONS), rng.choice(COLOURS), rng.choice(w.orgs).name))
    for _ in range(n_events):
        city = rng.choice(w.places).name
        name = _named(rng, split, lambda c=city: f"the {c} {rng.choice(_EVENT_KIND)} of {rng.randint(1800, 2020)}",
                      used)
        w.events.append(Event(name, int(name.rsplit(" ", 1)[1]), city, rng.choice(w.orgs).name))
    return w


@lru_cache(maxsize=1)
def core_world() -> World:
    """The fixed training world whose facts the corpus repeats (closed-book questions ask about it)."""
    return make_world("train", 0, n_people=200, n_places=60, n_orgs=40, n_events=30)


def closed_book_entities(held_out: bool) -> list:
    """Core-world entities whose facts appear in the corpus only as prose (held_out=True) or also as
    closed-book question/answer lines (held_out=False). The split is fixed by a stable hash of the name."""
    return [e for e in core_world().entities() if (zlib.crc32(e.name.encode()) % 2 == 0) == held_out]
