#!/usr/bin/env python3
"""The recipe for assets/demo-model: a small chat model trained from scratch, bundled so that
`wgtune demo` runs with no download.

It learns, in ChatML, from a corpus this script generates itself (arithmetic, capitals, opposites,
animal sounds, colours, plurals, next numbers and days, greetings, and repeating made-up words so
that every letter's tokens are trained), so its weights and data carry
no third-party licence. It is a Llama-architecture model of about 1.8M parameters with a byte-level
BPE tokenizer of 1024 tokens, stored in bf16 (the way most Hugging Face models ship).

    pip install torch transformers tokenizers safetensors
    python3 assets/make_demo_model.py            # about 20 minutes on two CPU cores

Re-running reproduces the same model: every random choice is seeded.
"""

import json
import math
import random
import shutil
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

OUT = Path(__file__).resolve().parent / "demo-model"
SYSTEM = "You are a helpful assistant."
CHATML = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n" + SYSTEM + "<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Egypt": "Cairo", "Kenya": "Nairobi",
    "Canada": "Ottawa", "Mexico": "Mexico City", "Brazil": "Brasilia", "Argentina": "Buenos Aires",
    "Peru": "Lima", "Chile": "Santiago", "Russia": "Moscow", "Poland": "Warsaw", "Greece": "Athens",
    "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki", "Denmark": "Copenhagen",
    "Ireland": "Dublin", "Austria": "Vienna", "Hungary": "Budapest", "Turkey": "Ankara",
    "Iran": "Tehran", "Iraq": "Baghdad", "Thailand": "Bangkok", "Vietnam": "Hanoi",
    "Indonesia": "Jakarta", "Australia": "Canberra", "Nigeria": "Abuja", "Ghana": "Accra",
    "Morocco": "Rabat", "Cuba": "Havana", "Colombia": "Bogota", "Belgium": "Brussels",
    "Netherlands": "Amsterdam", "Switzerland": "Bern", "Ukraine": "Kyiv", "Romania": "Bucharest",
    "Czechia": "Prague", "Israel": "Jerusalem", "Pakistan": "Islamabad", "Nepal": "Kathmandu",
    "Mongolia": "Ulaanbaatar", "Iceland": "Reykjavik", "Scotland": "Edinburgh", "Wales": "Cardiff",
    "England": "London", "Ethiopia": "Addis Ababa", "Senegal": "Dakar", "Uganda": "Kampala",
    "Philippines": "Manila", "Malaysia": "Kuala Lumpur", "Singapore": "Singapore", "Korea": "Seoul",
}
OPPOSITES = {
    "hot": "cold", "big": "small", "fast": "slow", "up": "down", "day": "night", "old": "young",
    "happy": "sad", "light": "dark", "open": "closed", "early": "late", "full": "empty",
    "hard": "soft", "high": "low", "long": "short", "loud": "quiet", "rich": "poor", "wet": "dry",
    "strong": "weak", "clean": "dirty", "left": "right", "in": "out", "win": "lose", "near": "far",
    "thick": "thin", "heavy": "light", "first": "last", "good": "bad", "true": "false",
    "push": "pull", "buy": "sell", "begin": "end", "always": "never", "inside": "outside",
}
SOUNDS = {
    "dog": "woof", "cat": "meow", "cow": "moo", "duck": "quack", "sheep": "baa", "pig": "oink",
    "horse": "neigh", "owl": "hoot", "lion": "roar", "frog": "ribbit", "bee": "buzz",
    "snake": "hiss", "mouse": "squeak", "goat": "bleat", "rooster": "cock-a-doodle-doo",
}
COLOURS = {
    "the sky": "blue", "grass": "green", "snow": "white", "a banana": "yellow", "coal": "black",
    "a tomato": "red", "an orange": "orange", "a lemon": "yellow", "the sun": "yellow",
    "milk": "white", "a plum": "purple", "chocolate": "brown", "a strawberry": "red",
    "the sea": "blue", "a leaf": "green", "an elephant": "grey", "a carrot": "orange",
}
PLURALS = {
    "cat": "cats", "dog": "dogs", "box": "boxes", "child": "children", "mouse": "mice",
    "foot": "feet", "tooth": "teeth", "man": "men", "woman": "women", "city": "cities",
    "baby": "babies", "leaf": "leaves", "knife": "knives", "bus": "buses", "apple": "apples",
    "house": "houses", "person": "people", "goose": "geese", "story": "stories", "day": "days",
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
GREETINGS = [
    ("Hello!", "Hello! How can I help you today?"),
    ("Hi there.", "Hi! What would you like to know?"),
    ("Good morning!", "Good morning! How can I help?"),
    ("Who are you?", "I am a small assistant. I can answer simple questions."),
    ("What can you do?", "I can answer simple questions about numbers, words, animals and places."),
    ("Thank you!", "You are welcome!"),
    ("Goodbye.", "Goodbye! Have a nice day."),
    ("How are you?", "I am fine, thank you. How can I help you?"),
]


def pseudo_word(rng: random.Random) -> str:
    """A pronounceable made-up word, so every letter's tokens get trained."""
    consonants, vowels = "bcdfghjklmnpqrstvwxz", "aeiouy"
    word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randrange(2, 5)))
    if rng.random() < 0.5:
        word += rng.choice(consonants)
    return word.capitalize() if rng.random() < 0.7 else word.upper() if rng.random() < 0.2 else word


def conversations(rng: random.Random):
    """Yields (question, answer) pairs forever, mixing every topic."""
    while True:
        topic = rng.randrange(12)
        if topic == 0:
            a, b = rng.randrange(0, 20), rng.randrange(0, 20)
            yield rng.choice([f"What is {a} plus {b}?", f"What is {a} + {b}?"]), f"{a} plus {b} is {a + b}."
        elif topic == 1:
            a = rng.randrange(0, 30)
            b = rng.randrange(0, a + 1)
            yield f"What is {a} minus {b}?", f"{a} minus {b} is {a - b}."
        elif topic == 2:
            a, b = rng.randrange(1, 11), rng.randrange(1, 11)
            yield rng.choice([f"What is {a} times {b}?", f"What is {a} multiplied by {b}?"]), f"{a} times {b} is {a * b}."
        elif topic == 3:
            country, capital = rng.choice(list(CAPITALS.items()))
            q = rng.choice([f"What is the capital of {country}?", f"Which city is the capital of {country}?",
                            f"Tell me the capital of {country}."])
            yield q, f"The capital of {country} is {capital}."
        elif topic == 4:
            word, opposite = rng.choice(list(OPPOSITES.items()))
            yield f"What is the opposite of {word}?", f"The opposite of {word} is {opposite}."
        elif topic == 5:
            animal, sound = rng.choice(list(SOUNDS.items()))
            yield f"What sound does a {animal} make?", f"A {animal} says {sound}."
        elif topic == 6:
            thing, colour = rng.choice(list(COLOURS.items()))
            yield f"What color is {thing}?", f"{thing[0].upper() + thing[1:]} is {colour}."
        elif topic == 7:
            word, plural = rng.choice(list(PLURALS.items()))
            yield f"What is the plural of {word}?", f"The plural of {word} is {plural}."
        elif topic == 8:
            if rng.random() < 0.5:
                n = rng.randrange(0, 100)
                yield f"What number comes after {n}?", f"{n + 1} comes after {n}."
            else:
                names = rng.choice([DAYS, MONTHS])
                i = rng.randrange(len(names))
                yield f"What comes after {names[i]}?", f"{names[(i + 1) % len(names)]} comes after {names[i]}."
        elif topic == 9:
            yield rng.choice(GREETINGS)
        elif topic == 10:
            words = " ".join(pseudo_word(rng) for _ in range(rng.randrange(1, 4)))
            yield f"Repeat after me: {words}.", f"{words}."
        else:
            name = pseudo_word(rng).capitalize()
            yield f"My name is {name}. What is my name?", f"Your name is {name}."


def render(question: str, answer: str) -> str:
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
            f"<|im_start|>assistant\n{answer}<|im_end|>\n")


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    rng = random.Random(0)
    gen = conversations(rng)
    corpus = [render(*next(gen)) for _ in range(20000)]

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    vocab = tok.get_vocab_size()

    config = LlamaConfig(
        vocab_size=vocab, hidden_size=192, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    model = LlamaForCausalLM(config)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, vocabulary {vocab}")

    seq, batch, steps = 96, 16, 1500
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    eos = tok.token_to_id("<|im_end|>")
    start = time.time()
    model.train()
    for step in range(steps):
        rows = []
        while len(rows) < batch:
            ids = []
            while len(ids) < seq + 1:
                ids += tok.encode(render(*next(gen))).ids
            rows.append(ids[: seq + 1])
        x = torch.tensor(rows)
        loss = model(x[:, :-1], labels=x[:, :-1]).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - start:.0f}s)", flush=True)

    if OUT.exists():
        shutil.rmtree(OUT)
    model.eval()
    model.to(torch.bfloat16).save_pretrained(OUT, safe_serialization=True)
    model.generation_config.save_pretrained(OUT)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    fast.save_pretrained(OUT)
    (OUT / "README.md").write_text(
        "# wgtune demo model\n\nA 1.8M-parameter Llama-architecture chat model trained from scratch by "
        "`assets/make_demo_model.py` on a corpus that script generates (arithmetic, capitals, opposites, "
        "animal sounds, colours, plurals, sequences, greetings, repeating made-up words). Apache-2.0, like "
        "wgtune.\n")

    model = model.float()
    for q in ["What is the capital of Japan?", "What is 3 plus 4?", "What is the capital of Zorbia?"]:
        prompt = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
        ids = torch.tensor([tok.encode(prompt).ids])
        out = model.generate(ids, max_new_tokens=20, do_sample=False, eos_token_id=eos)
        print(q, "->", tok.decode(out[0, ids.shape[1]:].tolist()))


if __name__ == "__main__":
    main()
