#!/usr/bin/env python3
"""Loads a classifier that `wgtune export` wrote with the reference libraries and checks that it
labels a held-out file exactly as wgtune did.

    pip install torch transformers peft safetensors
    wgtune eval --model BASE --trained RUN --data HELD_OUT.jsonl --json ours.json
    wgtune export --model BASE --trained RUN --merged MERGED_DIR --adapter ADAPTER_DIR
    python3 scripts/check_classifier_export.py --base BASE --merged MERGED_DIR --adapter ADAPTER_DIR \
        --data HELD_OUT.jsonl --ours ours.json

The merged folder is loaded by AutoModelForSequenceClassification as is; the adapter by PEFT's
PeftModel.from_pretrained on the base model's sequence-classification class, with the classes
from the adapter's labels.json. Both classify every record (batched, right-padded); the script
fails unless both give wgtune's class for every record.
"""

import argparse
import json
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def classify(model, tokenizer, texts, batch_size=16):
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start : start + batch_size], padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits
        out.extend(model.config.id2label[i] for i in logits.argmax(-1).tolist())
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--merged", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--ours", required=True, help="wgtune eval --json output")
    args = p.parse_args()

    records = [json.loads(line) for line in open(args.data) if line.strip()]
    texts, truth = [r["text"] for r in records], [str(r["label"]) for r in records]
    ours = json.load(open(args.ours))
    tuned = next(v for k, v in ours.items() if k.startswith("fine-tuned"))
    our_classes = [a["predicted"] for a in tuned["answers"]]

    tokenizer = AutoTokenizer.from_pretrained(args.merged)
    tokenizer.padding_side = "right"
    # float32 as wgtune computes, whatever dtype the folders store.
    merged = AutoModelForSequenceClassification.from_pretrained(args.merged, dtype=torch.float32).eval()
    tokenizer.pad_token_id = merged.config.pad_token_id

    labels = json.load(open(f"{args.adapter}/labels.json"))
    id2label = {int(k): v for k, v in labels["id2label"].items()}
    base = AutoModelForSequenceClassification.from_pretrained(
        args.base, num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()},
        pad_token_id=labels["pad_token_id"], dtype=torch.float32,
    )
    adapted = PeftModel.from_pretrained(base, args.adapter).eval()

    ok = True
    for name, model in [("merged (transformers)", merged), ("adapter (PEFT)", adapted)]:
        classes = classify(model, tokenizer, texts)
        accuracy = sum(c == t for c, t in zip(classes, truth)) / len(truth)
        differ = sum(c != o for c, o in zip(classes, our_classes))
        print(f"{name}: accuracy {100 * accuracy:.1f} %, {differ} of {len(texts)} classes differ from wgtune's")
        for i, (c, o) in enumerate(zip(classes, our_classes)):
            if c != o:
                print(f"  record {i + 1}: {texts[i]!r}: {c}, wgtune {o} ({100 * tuned['answers'][i]['confidence']:.0f} %)")
        ok &= differ == 0 and len(our_classes) == len(texts)
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
