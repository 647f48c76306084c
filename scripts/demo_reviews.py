#!/usr/bin/env python3
"""Product reviews for `make demo`, as JSON lines for `sluice produce`.

  demo_reviews.py N [SEED] | sluice produce redis://127.0.0.1:56379/reviews

Each line is {"seq", "key", "text", "produced_at_us"}, like sluice
produce --generate, but the text is a review that means something: one to
three sentences on topics (delivery, battery, food, room, support, price,
sound, screen), each praising, faulting or just describing, so that
sentiment is mixed and a semantic search finds reviews on the query's
topic. The same N and SEED give the same texts. Standard library only.
"""
import json
import random
import sys
import time

SENTENCES = {
    "delivery": {
        "pos": ["Delivery was fast and the driver was friendly.",
                "It arrived a day early and was well packed.",
                "Shipping was quick, the parcel came the next morning.",
                "The courier was on time and very polite."],
        "neg": ["The parcel arrived two weeks late.",
                "Delivery took forever and nobody answered the phone.",
                "The box was crushed when it finally arrived.",
                "The courier left it in the rain and it got soaked."],
        "neu": ["It was delivered on a Tuesday.",
                "The parcel came by regular post."],
    },
    "battery": {
        "pos": ["The battery easily lasts two full days.",
                "Battery life is excellent, I charge it once a week.",
                "It charges to full in under an hour."],
        "neg": ["The battery died after a week.",
                "Battery life is terrible, it barely lasts until lunch.",
                "It gets hot while charging and the battery drains fast."],
        "neu": ["It uses a USB-C cable for charging.",
                "The battery is 4000 mAh."],
    },
    "food": {
        "pos": ["The pizza was delicious and still hot.",
                "Fresh ingredients, generous portions, great taste.",
                "Best curry I have had in years."],
        "neg": ["The food was cold and soggy.",
                "The soup was bland and far too salty.",
                "My burger was raw in the middle, disgusting."],
        "neu": ["I ordered the lunch menu.",
                "We had pasta and a salad."],
    },
    "room": {
        "pos": ["The hotel room was spotless and quiet.",
                "Our room had a lovely view of the sea.",
                "The bed was comfortable and the shower was great."],
        "neg": ["The room was dirty and smelled of smoke.",
                "Noisy street, thin walls, we hardly slept.",
                "The air conditioning in our room was broken."],
        "neu": ["We stayed three nights on the second floor.",
                "The room had two single beds."],
    },
    "support": {
        "pos": ["Customer support solved my problem in minutes.",
                "The support team was helpful and refunded me at once.",
                "Friendly staff who really listened."],
        "neg": ["Customer service was rude and unhelpful.",
                "I waited an hour on hold and then got cut off.",
                "They refused a refund for a broken item."],
        "neu": ["I contacted support by email.",
                "The manual lists a phone number for support."],
    },
    "price": {
        "pos": ["Great value for the money.",
                "Cheaper than anywhere else and just as good."],
        "neg": ["Way too expensive for what you get.",
                "Overpriced and cheaply made."],
        "neu": ["It costs about the same as the older model.",
                "I paid the full price."],
    },
    "sound": {
        "pos": ["The sound quality is amazing, deep bass and clear voices.",
                "Music sounds rich and the noise cancelling works well."],
        "neg": ["The speaker crackles and distorts at high volume.",
                "Tinny sound and the left earbud stopped working."],
        "neu": ["It connects over Bluetooth.",
                "There is a volume button on the side."],
    },
    "screen": {
        "pos": ["The screen is bright and sharp, even in sunlight.",
                "Gorgeous display with vivid colours."],
        "neg": ["The screen cracked after a small drop.",
                "Dead pixels on the display right out of the box."],
        "neu": ["The screen is six inches wide.",
                "It has a matte display."],
    },
}
OPENERS = ["", "", "", "Honestly, ", "Well. ", "Second order here. ",
           "Bought this for my dad. ", "Quick review: "]
CLOSERS = {
    "pos": ["Would buy again!", "Highly recommended.", "Five stars.", ""],
    "neg": ["Never again.", "Avoid.", "I want my money back.", ""],
    "neu": ["", "", "That's all."],
}


def review(rng):
    topics = rng.sample(sorted(SENTENCES), rng.choice((1, 2, 2, 3)))
    mood = rng.choice(("pos", "pos", "neg", "neg", "neu", "mixed"))
    parts = []
    for t in topics:
        m = rng.choice(("pos", "neg")) if mood == "mixed" else mood
        if mood != "mixed" and rng.random() < 0.25:
            m = "neu"
        parts.append(rng.choice(SENTENCES[t][m]))
    closer = rng.choice(CLOSERS["neu" if mood == "mixed" else mood])
    opener = rng.choice(OPENERS)
    if opener.endswith(", "):
        parts[0] = parts[0][0].lower() + parts[0][1:]
    return (opener + " ".join(parts) + (" " + closer if closer else "")).strip()


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: demo_reviews.py N [SEED]")
    n = int(sys.argv[1])
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) == 3 else 1)
    out = sys.stdout
    for seq in range(n):
        out.write(json.dumps({"seq": seq, "key": "k%d" % (seq % 1000),
                              "text": review(rng),
                              "produced_at_us": time.time_ns() // 1000}) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
