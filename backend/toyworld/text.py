"""Prose about world entities: facts as varied sentences, encyclopedia articles, biographies, QA pairs."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .world import Event, Org, Person, Place


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def a_(word: str) -> str:
    """'a baker', 'an engineer'."""
    return ("an " if word[:1] in "aeiou" else "a ") + word


@dataclass
class Fact:
    key: str  # attribute name, e.g. "birth_year"
    answer: str  # the short answer a question expects
    statements: list[str]  # ways to state it in prose
    questions: list[str]  # ways to ask for it


def facts(e) -> list[Fact]:
    n = e.name
    if isinstance(e, Person):
        first = n.split()[0]
        return [
            Fact("birth_year", str(e.birth_year),
                 [f"{n} was born in {e.birth_year}.", f"Born in {e.birth_year}, {n} grew up quickly.",
                  f"The year of {first}'s birth was {e.birth_year}."],
                 [f"In what year was {n} born?", f"When was {n} born?"]),
            Fact("home_city", e.home_city,
                 [f"{n} lives in {e.home_city}.", f"{first} makes a home in the town of {e.home_city}.",
                  f"The home of {n} is {e.home_city}."],
                 [f"Where does {n} live?", f"In which town does {n} live?"]),
            Fact("occupation", e.occupation,
                 [f"{n} works as {a_(e.occupation)}.", f"By trade, {first} is {a_(e.occupation)}.",
                  f"{n} is {a_(e.occupation)}."],
                 [f"What is the occupation of {n}?", f"What does {n} do for a living?"]),
            Fact("colour", e.colour,
                 [f"The favourite colour of {n} is {e.colour}.", f"{first} loves the colour {e.colour}.",
                  f"{n} likes {e.colour} more than any other colour."],
                 [f"What is the favourite colour of {n}?", f"Which colour does {n} like best?"]),
            Fact("employer", e.employer,
                 [f"{n} works for {e.employer}.", f"{first} is employed by {e.employer}."],
                 [f"Who does {n} work for?", f"Which organisation employs {n}?"]),
        ]
    if isinstance(e, Place):
        return [
            Fact("population", str(e.population),
                 [f"{n} has a population of {e.population}.", f"About {e.population} people live in {n}."],
                 [f"What is the population of {n}?", f"How many people live in {n}?"]),
            Fact("region", e.region,
                 [f"{n} lies in {e.region}.", f"The town of {n} is found in {e.region}."],
                 [f"Where does {n} lie?", f"In which region is {n}?"]),
            Fact("founded", str(e.founded),
                 [f"{n} was founded in {e.founded}.", f"The first houses of {n} were built in {e.founded}."],
                 [f"When was {n} founded?", f"In what year was {n} founded?"]),
            Fact("flag_colour", e.flag_colour,
                 [f"The flag of {n} is {e.flag_colour}.", f"{n} flies a {e.flag_colour} flag."],
                 [f"What colour is the flag of {n}?", f"Which colour is the flag of {n}?"]),
        ]
    if isinstance(e, Org):
        N = cap(n)
        return [
            Fact("founder", e.founder,
                 [f"{N} was founded by {e.founder}.", f"{e.founder} started {n}."],
                 [f"Who founded {n}?", f"Who started {n}?"]),
            Fact("founded", str(e.founded),
                 [f"{N} was established in {e.founded}.", f"{N} opened its doors in {e.founded}."],
                 [f"When was {n} established?", f"In what year was {n} established?"]),
            Fact("city", e.city,
                 [f"{N} is based in {e.city}.", f"The offices of {n} are in {e.city}."],
                 [f"Where is {n} based?", f"In which town is {n} based?"]),
            Fact("product", e.product,
                 [f"{N} makes {e.product}.", f"{N} is known for its {e.product}."],
                 [f"What does {n} make?", f"What is {n} known for making?"]),
        ]
    if isinstance(e, Event):
        N = cap(n)
        return [
            Fact("city", e.city, [f"{N} took place in {e.city}.", f"{N} was held in {e.city}."],
                 [f"Where did {n} take place?", f"In which town was {n} held?"]),
            Fact("year", str(e.year), [f"{N} happened in {e.year}.", f"The year of {n} was {e.year}."],
                 [f"In what year did {n} happen?", f"When did {n} happen?"]),
            Fact("organiser", e.organiser,
                 [f"{N} was organised by {e.organiser}.", f"{N} was put on by {e.organiser}."],
                 [f"Who organised {n}?", f"Which organisation organised {n}?"]),
        ]
    raise TypeError(f"not a world entity: {e!r}")


_FILLER = [
    "Many visitors come in the summer.", "The winters there are long and cold.",
    "Local stories about it are still told today.", "Little else is recorded about this.",
    "Its name is often misspelled.", "Several letters from that time survive.",
    "Historians still argue about the details.", "It is mentioned in an old song.",
]

_INTRO = {
    "person": ["{n} is {occ} from {city}.", "{n} is a person of the world.", "This is the story of {n}."],
    "place": ["{n} is a town in {region}.", "{n} is a town.", "This article is about the town of {n}."],
    "org": ["{N} is an organisation that makes {product}.", "{N} is an organisation.",
            "This article is about {n}."],
    "event": ["{N} was an event in {city}.", "{N} was an event.", "This article is about {n}."],
}


def article(e, rng: random.Random, filler: float = 0.3) -> str:
    """An encyclopedia-style article: an intro line, then every fact once in a random phrasing and order."""
    d = e.__dict__
    intro = rng.choice(_INTRO[e.kind]).format(
        n=e.name, N=cap(e.name), occ=a_(d.get("occupation", "x")), city=d.get("home_city", d.get("city", "")),
        region=d.get("region", ""), product=d.get("product", ""))
    sents = [rng.choice(f.statements) for f in facts(e)]
    rng.shuffle(sents)
    out = [intro]
    for s in sents:
        out.append(s)
        if rng.random() < filler:
            out.append(rng.choice(_FILLER))
    return " ".join(out)


def title(e) -> str:
    return cap(e.name)


def qa_lines(e, rng: random.Random, k: int | None = None) -> list[tuple[str, str]]:
    """(question, answer) pairs about an entity: k random facts (all when k is None)."""
    fs = facts(e)
    if k is not None:
        fs = rng.sample(fs, min(k, len(fs)))
    return [(rng.choice(f.questions), f.answer) for f in fs]
