#!/usr/bin/env python3
# tokenizer_bench.py: writes the mixed benchmark text (deterministic, >= 1 MB: prose-like words,
# the golden corpus, code, CJK/Cyrillic/Arabic runs, numbers, emoji) and measures Hugging Face
# tokenizers' single-thread load and encode on it. Usage: tokenizer_bench.py OUT_TEXT [TOKENIZER...]
import json, os, random, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_text(path, size=1_200_000):
    rnd = random.Random(7)
    corpus = json.load(open(os.path.join(ROOT, "tests", "golden", "tok", "corpus.json")))
    syl = ["ka", "lo", "mi", "the", "an", "er", "in", "st", "re", "ou", "ing", "tion", "pro", "con"]
    words = ["".join(rnd.choice(syl) for _ in range(rnd.randint(1, 4))) for _ in range(3000)]
    code = ["def f(x):\n    return x + 1\n", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}\n",
            "if err != nil {\n    return nil, err\n}\n", "const y = await fetch(`/api/${id}`);\n"]
    ranges = [(0x4E00, 0x9FFF), (0x0410, 0x044F), (0x0627, 0x064A), (0x3041, 0x3096)]
    out, n = [], 0
    while n < size:
        k = rnd.random()
        if k < 0.45:
            s = " ".join(rnd.choice(words) for _ in range(rnd.randint(5, 25)))
            s = s[0].upper() + s[1:] + rnd.choice([". ", "! ", "? ", ",\n", ".\n\n"])
        elif k < 0.6:
            s = rnd.choice(corpus) + "\n"
        elif k < 0.75:
            s = rnd.choice(code)
        elif k < 0.9:
            a, b = rnd.choice(ranges)
            s = "".join(chr(rnd.randint(a, b)) for _ in range(rnd.randint(3, 30))) + " "
        else:
            s = f"{rnd.randint(0, 10**9)} {rnd.random():.6f} {rnd.choice(['😀', '👍🏽', '👩‍💻'])} "
        out.append(s)
        n += len(s.encode())
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("".join(out))


def main():
    path = sys.argv[1]
    make_text(path)
    print(f"text: {path}, {os.path.getsize(path)} bytes")
    if len(sys.argv) < 3:
        return
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer
    text = open(path, encoding="utf-8", newline="").read()  # keep \r\n as written
    mb = len(text.encode()) / 1e6
    for tp in sys.argv[2:]:
        t0 = time.perf_counter()
        tok = Tokenizer.from_file(tp)
        load = time.perf_counter() - t0
        best = 1e9
        for _ in range(5):
            t0 = time.perf_counter()
            n = len(tok.encode(text, add_special_tokens=False).ids)
            best = min(best, time.perf_counter() - t0)
        print(f"HF tokenizers: {tp}: load {load*1e3:.1f} ms; encode {mb:.2f} MB in {best*1e3:.1f} ms"
              f" = {mb/best:.2f} MB/s ({n} ids)")
        lines = [x for x in text.split("\n")]
        lines = [x + "\n" for x in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
        best = 1e9
        for _ in range(5):
            t0 = time.perf_counter()
            n = sum(len(tok.encode(x, add_special_tokens=False).ids) for x in lines)
            best = min(best, time.perf_counter() - t0)
        print(f"HF tokenizers: per line: {best*1e3:.1f} ms = {mb/best:.2f} MB/s ({n} ids)")


if __name__ == "__main__":
    main()
