#!/usr/bin/env python3
"""Writes the demo classification dataset: short product reviews labelled with what they are
about (delivery, quality, price or support). Run from the repository root:

    python3 assets/reviews/make_reviews.py

Seeded, so it always writes the same files. The validation file uses products and sentences the
training file never contains, so a classifier must learn the topics, not the lines.
"""

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

TRAIN_PRODUCTS = ["kettle", "blender", "desk lamp", "backpack", "phone case", "office chair", "toaster", "rain jacket",
                  "headphones", "coffee grinder", "yoga mat", "water bottle"]
VALIDATION_PRODUCTS = ["air fryer", "bike helmet", "keyboard", "sleeping bag", "wall clock"]

# (train templates, validation templates) per class; {p} is the product.
TEMPLATES = {
    "delivery": (
        ["The {p} arrived two weeks late.", "My {p} was delivered to the wrong address.",
         "The parcel with the {p} came crushed and the box was torn.", "Shipping took forever, the {p} only came yesterday.",
         "The courier left the {p} in the rain outside my door.", "Tracking said delivered but the {p} never showed up.",
         "Fast shipping, the {p} was here the next morning.", "The {p} came a day earlier than promised.",
         "The package was lost twice before the {p} reached me.", "Delivery was quick and the {p} was well packed.",
         "I waited a month for the {p} to be shipped.", "The driver threw the box with the {p} over the fence."],
        ["It took three weeks for the {p} to get here.", "The {p} was dropped off at my neighbour's house by mistake.",
         "Arrived in two days, well wrapped, the {p} was fine.", "The shipment with my {p} got stuck at the depot for ten days."],
    ),
    "quality": (
        ["The {p} broke after one week of use.", "Solid build, the {p} feels like it will last for years.",
         "The handle of the {p} snapped the first time I used it.", "The {p} is made of cheap plastic that cracks easily.",
         "After a month the {p} still works perfectly.", "The stitching on the {p} came apart within days.",
         "The {p} stopped working after the second use.", "Great materials, the {p} is sturdy and well made.",
         "The paint on the {p} started peeling right away.", "The {p} overheats and smells of burning plastic.",
         "Very durable {p}, it survived a fall without a scratch.", "The zipper on the {p} jammed and tore."],
        ["The {p} fell apart the first time I used it.", "Well built, the {p} feels robust and heavy.",
         "A seam on the {p} split after a few days.", "The {p} still works like new after months of daily use."],
    ),
    "price": (
        ["The {p} is far too expensive for what it is.", "Great value, the {p} cost half of what others charge.",
         "I paid double the price in the shop for the same {p}.", "The {p} was on sale and worth every cent.",
         "Overpriced, you can get a better {p} for less money.", "For this price the {p} is a bargain.",
         "They raised the price of the {p} the day after I ordered.", "The {p} is cheap and does the job.",
         "Not worth the money, the {p} costs too much.", "Affordable {p}, much cheaper than the big brands.",
         "The discount code for the {p} did not apply at checkout.", "I was charged twice for the {p}."],
        ["Way too pricey, the {p} should cost half as much.", "The {p} was a steal at this price.",
         "Other stores sell the same {p} for twenty euros less.", "A cheap {p} that is good value for money."],
    ),
    "support": (
        ["Customer service never answered my emails about the {p}.", "The support team replaced my {p} without any questions.",
         "I called about the {p} three times and nobody helped.", "The agent on the chat was rude when I asked about the {p}.",
         "Support sent me a manual for the {p} within an hour.", "The helpline kept me on hold for an hour about my {p}.",
         "They refused to refund the {p} even though it was under warranty.", "A friendly agent fixed the problem with my {p} by phone.",
         "My complaint about the {p} was ignored for weeks.", "The seller answered my question about the {p} right away.",
         "Nobody at the service desk knew anything about the {p}.", "Support promised a call back about the {p} that never came."],
        ["The service team did not reply to my questions about the {p}.", "An agent sorted out the issue with my {p} in minutes.",
         "I was transferred five times when I asked about the {p}.", "The staff kindly helped me return the {p}."],
    ),
}

OPENINGS = ["", "", "Honestly, ", "Well, ", "To be fair, ", "Update: "]
ENDINGS = ["", "", " Not happy.", " Would buy again.", " Just saying.", " Five stars for that.", " One star."]


def review(rng, template, product):
    opening, body = rng.choice(OPENINGS), template.format(p=product)
    if opening and not body.startswith("I "):
        body = body[0].lower() + body[1:]
    return opening + body + rng.choice(ENDINGS)


def write(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def main():
    rng = random.Random(13)
    train, validation = [], []
    for label, (train_templates, validation_templates) in TEMPLATES.items():
        for template in train_templates:
            for product in rng.sample(TRAIN_PRODUCTS, 7):
                train.append({"text": review(rng, template, product), "label": label})
        for template in validation_templates:
            for product in rng.sample(VALIDATION_PRODUCTS, 5):
                validation.append({"text": review(rng, template, product), "label": label})
    rng.shuffle(train)
    rng.shuffle(validation)
    write(HERE / "train.jsonl", train)
    write(HERE / "validation.jsonl", validation)
    print(f"{len(train)} training and {len(validation)} validation reviews in {HERE}")


if __name__ == "__main__":
    main()
