"""Writes ftrecipes/samples/instructions.jsonl, the bundled instruction-tuning sample (run from the repository root).

Chats of short tasks whose answers are checkable (unit conversion, arithmetic, ordering, word facts), some with a
system message, some with a second turn. Every answer follows one house style ("3 hours is 180 minutes."), so a model
tuned on part of them can be scored by exact match on the rest: a before/after number a learner can trust.
Deterministic: the same file every run."""
import json
import random
from pathlib import Path

rng = random.Random(2026)
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
UNITS = [("kilometres", "metres", 1000), ("metres", "centimetres", 100), ("hours", "minutes", 60),
         ("minutes", "seconds", 60), ("kilograms", "grams", 1000), ("litres", "millilitres", 1000), ("days", "hours", 24)]
OPPOSITES = [("hot", "cold"), ("early", "late"), ("open", "closed"), ("full", "empty"), ("light", "dark"), ("up", "down"),
             ("fast", "slow"), ("old", "new"), ("wet", "dry"), ("loud", "quiet"), ("high", "low"), ("first", "last"),
             ("strong", "weak"), ("rich", "poor"), ("hard", "soft"), ("thick", "thin"), ("inside", "outside")]
PLURALS = [("child", "children"), ("mouse", "mice"), ("box", "boxes"), ("city", "cities"), ("knife", "knives"),
           ("tooth", "teeth"), ("bus", "buses"), ("leaf", "leaves"), ("woman", "women"), ("story", "stories"),
           ("sheep", "sheep"), ("church", "churches"), ("foot", "feet"), ("baby", "babies"), ("wolf", "wolves"),
           ("potato", "potatoes"), ("goose", "geese"), ("lady", "ladies")]
WORDS = ["river", "garden", "lantern", "harbour", "pencil", "meadow", "window", "orchard", "bridge", "kettle", "castle",
         "island", "violin", "rocket", "tunnel", "forest", "candle", "ladder", "mirror", "saddle"]
SENTENCES = ["The ferry leaves at noon", "Our neighbours planted three apple trees", "Rain is expected on Friday",
             "She walked to the station before breakfast", "The library opens late on Sundays",
             "Two cats slept by the warm stove", "He fixed the old bicycle himself", "The concert was cancelled",
             "We painted the fence green last summer", "The baker sells bread until six"]
SYSTEMS = ["You are a concise assistant. Answer in one short sentence.", "Answer briefly and exactly."]


def convert():
    a, b, f = rng.choice(UNITS); n = rng.randint(2, 12)
    return f"Convert {n} {a} to {b}.", f"{n} {a} is {n * f} {b}."

def add():
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    return f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."

def subtract():
    a, b = sorted(rng.sample(range(3, 90), 2), reverse=True)
    return f"What is {a} minus {b}?", f"{a} minus {b} is {a - b}."

def larger():
    a, b = rng.sample(range(10, 999), 2)
    return f"Which is larger, {a} or {b}?", f"{max(a, b)} is larger than {min(a, b)}."

def sort_numbers():
    xs = rng.sample(range(1, 100), rng.randint(3, 5))
    return f"Sort these numbers from smallest to largest: {', '.join(map(str, xs))}.", ", ".join(map(str, sorted(xs))) + "."

def count_words():
    s = rng.choice(SENTENCES)
    return f'How many words are in this sentence: "{s}"?', f"That sentence has {len(s.split())} words."

def capitals():
    s = rng.choice(SENTENCES)
    return f"Write this in capital letters: {s}.", s.upper() + "."

def first_letter():
    w = rng.choice(WORDS)
    return f'What is the first letter of the word "{w}"?', f'The first letter of "{w}" is "{w[0]}".'

def next_day():
    i = rng.randrange(7)
    return f"What day comes after {DAYS[i]}?", f"The day after {DAYS[i]} is {DAYS[(i + 1) % 7]}."

def month_before():
    i = rng.randrange(12)
    return f"Which month comes before {MONTHS[i]}?", f"The month before {MONTHS[i]} is {MONTHS[i - 1]}."

def opposite():
    a, b = rng.choice(OPPOSITES)
    if rng.random() < .5: a, b = b, a
    return f'What is the opposite of "{a}"?', f'The opposite of "{a}" is "{b}".'

def plural():
    a, b = rng.choice(PLURALS)
    return f'What is the plural of "{a}"?', f'The plural of "{a}" is "{b}".'

def iso_date():
    y, m, d = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    return f"Write {d} {MONTHS[m - 1]} {y} as a date in the form YYYY-MM-DD.", f"{y}-{m:02d}-{d:02d}"

TASKS = [convert, add, subtract, larger, sort_numbers, count_words, capitals, first_letter, next_day, month_before,
         opposite, plural, iso_date]


def follow_up():
    "Two turns: a conversion, then the same quantity in a smaller unit."
    chain = {("hours", "minutes"): ("seconds", 3600), ("kilometres", "metres"): ("centimetres", 100000),
             ("days", "hours"): ("minutes", 1440)}
    (a, b), (c, f2) = rng.choice(list(chain.items()))
    f1 = dict(((u, v), f) for u, v, f in UNITS)[(a, b)]
    n = rng.randint(2, 9)
    return [{"role": "user", "content": f"Convert {n} {a} to {b}."},
            {"role": "assistant", "content": f"{n} {a} is {n * f1} {b}."},
            {"role": "user", "content": f"And in {c}?"},
            {"role": "assistant", "content": f"{n} {a} is {n * f2} {c}."}]


def main(n=360, out=Path("ftrecipes/samples/instructions.jsonl")):
    rows, seen = [], set()
    while len(rows) < n:
        r = rng.random()
        if r < 0.1: messages = follow_up()
        else:
            prompt, answer = rng.choice(TASKS)()
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
            if r > 0.85: messages.insert(0, {"role": "system", "content": rng.choice(SYSTEMS)})
        key = json.dumps(messages)
        if key in seen: continue
        seen.add(key)
        rows.append({"id": f"ins-{len(rows) + 1:03d}", "messages": messages})
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {len(rows)} chats to {out}")


if __name__ == "__main__":
    main()
