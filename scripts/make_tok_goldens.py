#!/usr/bin/env python3
# make_tok_goldens.py: builds the tokenizer test corpus and records Hugging Face `tokenizers`
# encodings/decodings of it for every tokenizer.json in ../shared/tokenizers (tests/golden/tok/).
# Usage: python scripts/make_tok_goldens.py [SHARED_DIR]   (needs `pip install tokenizers`)
import json
import os
import random
import sys

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared")
OUT = os.path.join(ROOT, "tests", "golden", "tok")
NAMES = ["llama3-instruct", "qwen3", "mistral-7b-v0.1-spm", "llama2-spm"]


def corpus():
    c = [
        "", " ", "  ", "\t", "\n", "\r\n", " \n ", "a", "A", "Hello", " Hello", "Hello world",
        "Hello, world!", "hello world.", "  leading spaces", "trailing spaces   ", "a  b   c    d",
        "The quick brown fox jumps over the lazy dog.", "I'm don't we'll they've she'd it's",
        "I'M DON'T WE'LL THEY'VE SHE'D IT'S", "'s 't 're 've 'm 'll 'd", "O'Reilly's book",
        "line1\nline2\n\nline4", "crlf\r\nline\r\n\r\nend", "mixed\rcr\nlf\r\nend\n\r",
        "tabs\tand\t\tmore\t\t\ttabs", "\n\n\n\n", "   \n\n   \n", "\u00a0non-breaking\u00a0space",
        "ideographic\u3000space", "thin\u2009space and\u200bzero width", "line\u2028separator",
        "1", "12", "123", "1234", "12345", "123456789", "3.14159265358979", "1,000,000",
        "2024-01-15T10:30:00Z", "0x1F 0b1010 1e-9 -42 +7", "v1.2.3-rc.4", "٣٤٥ ٠١٢",
        "१२३४ digits", "１２３ full-width", "Ⅻ roman ½ ¾ ²³",
        # scripts and languages
        "Bonjour, ça va? Où est la bibliothèque?", "Grüße aus München, Straße", "¿Qué tal? ¡Olé!",
        "Привет, мир! Как дела?", "Γειά σου Κόσμε", "שלום עולם", "مرحبا بالعالم",
        "नमस्ते दुनिया", "হ্যালো বিশ্ব", "สวัสดีชาวโลก", "ສະບາຍດີ", "Xin chào thế giới",
        "你好，世界！", "今天天气很好，我们去公园吧。", "こんにちは世界、カタカナとひらがな",
        "안녕하세요 세계", "안녕 jamo", "Tiếng Việt có dấu", "Türkçe İstanbul ıi",
        "ქართული ენა", "Հայերեն", "አማርኛ", "ᏣᎳᎩ", "𐌰𐌱𐌲 gothic", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙",
        "Ελληνικά και English mixed 中文 too", "Ωmega ohm Ω and Kelvin K Å angstrom",
        "ﬁ ligature ﬀ ﬃ", "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ", "ｶﾀｶﾅ halfwidth",
        # combining marks and normalization
        "e\u0301 vs \u00e9", "cafe\u0301", "n\u0303 a\u0308 o\u0302", "A\u030a\u0327",
        "\u1100\u1161\u11a8", "Z\u0351\u0333\u0359a\u0334\u0320l\u0338go", "x\u0300\u0301\u0302\u0303\u0304",
        "\u0915\u094d\u0937", "\u2126 \u212b \u00c5", "\ufb01\u0301",
        # emoji
        "😀", "😀😃😄", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "🇺🇸🇯🇵🇩🇪",
        "1️⃣ keycap", "❤️ heart ♥", "I love 🍕 and 🍣!", "👋🏻👋🏼👋🏽👋🏾👋🏿", "🧑🏽‍🚀 astronaut",
        "emoji🙂inside🙂words", "✨🎉🔥💯",
        # code
        "def f(x):\n    return x * 2\n", "int main(void) {\n\tprintf(\"hi\\n\");\n\treturn 0;\n}",
        "for (int i = 0; i < n; ++i) { a[i] += b[i]; }", "if x == 1 && y != 2 || !z { }",
        "const x = () => { return `template ${x}`; };", "SELECT * FROM users WHERE id = 42;",
        "<div class=\"a\">&amp; &lt;tag&gt;</div>", "{\"key\": [1, 2, 3], \"null\": null}",
        "#include <stdio.h>\n#define MAX(a,b) ((a)>(b)?(a):(b))", "x += 1; y -= 2; z *= 3; w /= 4;",
        "    indented\n        more\n\t\ttabbed", "fn main() -> Result<(), Box<dyn Error>> {}",
        "$ ls -la | grep '^d' > out.txt 2>&1", "a_b_c snake_case camelCase PascalCase kebab-case",
        "https://example.com/path?q=1&r=two#frag", "user@example.com", "C:\\Users\\name\\file.txt",
        "@decorator\nclass A(B):\n    pass", "x=[i**2 for i in range(10) if i%2]", "/* comment */ // line",
        "!!!???...;;;:::", "---===+++***", "(((nested)))", "[[[]]]{{{}}}", "~`!@#$%^&*()_+-=",
        "…“quotes” ‘single’ «guillemets» — dash – en", "¡¿‽⁇", "§¶†‡•",
        # repeats and long words
        "a" * 100, "ab" * 60, " " * 50, "\n" * 20, "!" * 40, "0" * 33, "ha" * 30 + "!", "é" * 40,
        "中" * 30, "😀" * 10, "-" * 80, "=" * 64 + "\n" + "=" * 64,
        "pneumonoultramicroscopicsilicovolcanoconiosis", "Donaudampfschifffahrtsgesellschaftskapitän",
        "supercalifragilisticexpialidocious" * 3, "x" * 300, "antidisestablishmentarianism" * 5,
        "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
        # special-token text inside prose
        "<|begin_of_text|>Hello", "Hi <|eot_id|> there", "<|start_header_id|>user<|end_header_id|>\n\nHi",
        "text<|end_of_text|>more", "<|reserved_special_token_5|>", "<|eot_id|><|eot_id|>",
        "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n", "<think>\nhmm\n</think>\n\nok",
        "<|endoftext|>", "a<|im_end|>b", "<s>", "</s>", "<s> Hello</s>", "x<s>y</s>z", "<unk>",
        " <s> spaced </s> ", "<<s>>", "<|eot_id", "eot_id|>", "< |eot_id| >", "<s><s></s>",
        "<tool_call>{\"name\": \"f\"}</tool_call>", "<|im_start|>system\nYou are helpful.<|im_end|>",
        "<|fim_prefix|>def<|fim_suffix|>x<|fim_middle|>",
        # misc
        "The year 1984 had 365 days and 52 weeks.", "Price: $1,234.56 (€1.100,00)", "50% off!!!",
        "e.g. i.e. etc. Mr. Dr. U.S.A.", "CAPS LOCK IS ON", "MiXeD cAsE", "a.b.c.d", "a-b-c", "a/b\\c",
        "\u00ad soft hyphen", "\ufeffBOM at start", "control\x01\x02\x7fchars", "\x1b[31mred\x1b[0m",
        "tab\tnewline\nreturn\rvt\x0bff\x0c", "𝟘𝟙𝟚 math digits", "\U0001f600\U0001f3fb",
        "  \t  \n  \t  ", "end with newline\n", "\nstart with newline", " \r\n \r\n ",
    ]
    rnd = random.Random(1234)
    atoms = ["the", " ", "  ", "\n", "Hello", "世界", "😀", "123", "4567", "é", "e\u0301", "'s", "!",
             "<|eot_id|>", "<s>", "</s>", "<|im_end|>", "\t", "ü", "Ω", "👍🏽", "\r\n", "x", "__",
             "ﬁ", "가", "\u0301", "..."]
    while len(c) < 260:
        c.append("".join(rnd.choice(atoms) for _ in range(rnd.randint(2, 12))))
    # the llama.cpp reference strings too
    inp = open(os.path.join(SHARED, "tokenizer-tests", "ggml-vocab-llama-bpe.gguf.inp"),
               encoding="utf-8").read().split("\n__ggml_vocab_test__\n")[:-1]
    c.extend(inp)
    return c


def main():
    os.makedirs(OUT, exist_ok=True)
    texts = corpus()
    with open(os.path.join(OUT, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=True, indent=0)
    rnd = random.Random(99)
    for name in NAMES:
        tok = Tokenizer.from_file(os.path.join(SHARED, "tokenizers", name, "tokenizer.json"))
        cases = []
        for t in texts:
            ids = tok.encode(t, add_special_tokens=False).ids
            ids_sp = tok.encode(t, add_special_tokens=True).ids
            cases.append({"ids": ids, "ids_special": ids_sp,
                          "decoded": tok.decode(ids_sp, skip_special_tokens=False),
                          "decoded_skip": tok.decode(ids_sp, skip_special_tokens=True)})
        # random id sequences: decode of arbitrary ids (split UTF-8, lone bytes, specials)
        nv = tok.get_vocab_size(with_added_tokens=True)
        rand = []
        for k in range(40):
            ids = [rnd.randrange(nv) for _ in range(rnd.randint(1, 12))]
            if k % 2:  # byte-ish low ids: byte fallback pieces and single-byte pieces
                ids = [rnd.randrange(3, 300) for _ in range(rnd.randint(1, 12))]
            rand.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                         "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
        with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
            json.dump({"tokenizer": name, "cases": cases, "random_decode": rand}, f,
                      ensure_ascii=True, separators=(",", ":"))
            f.write("\n")
        print(name, len(cases), "cases")




# ---- synthetic tokenizers: components the four real files do not use ----
def synthetic():
    from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
    from tokenizers import processors, trainers
    texts = corpus()
    extra = ["  <mask>  x", "a<mask>b", "[WORD] [WORD]s a[WORD] ([WORD])", "Hello World hello world",
             "HELLO   WORLD", "x1y22z333", "a,b;;c!!d", "Ünïcödé Àccents", "ﬁ ① ㍿", "xxaxx yxz"]
    texts = texts[:200] + extra
    specs = {}

    def bpe(**kw):
        return Tokenizer(models.BPE(**kw))

    t = bpe(unk_token="<unk>", fuse_unk=True)
    t.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(),
                                         normalizers.Strip(), normalizers.Replace(Regex(r"\s+"), " ")])
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    t.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    specs["synth-metaspace"] = (t, trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>"]),
                                [AddedToken("<mask>", lstrip=True, rstrip=True, special=True, normalized=False),
                                 AddedToken("[word]", single_word=True, special=False, normalized=True),
                                 AddedToken("hello world", special=False, normalized=True)])

    t = bpe(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>")
    t.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents()])
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                               pre_tokenizers.Digits(individual_digits=True),
                                               pre_tokenizers.Punctuation(behavior="contiguous")])
    t.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                     special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    specs["synth-pieces"] = (t, trainers.BpeTrainer(vocab_size=500, special_tokens=["[UNK]", "[CLS]", "[SEP]"],
                                                    continuing_subword_prefix="##", end_of_word_suffix="</w>"),
                             [AddedToken("[WORD]", single_word=True, special=True, normalized=False)])

    t = bpe()
    t.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.Prepend("^"),
                                         normalizers.Replace("  ", "_")])
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(" ", behavior="merged_with_next"),
        pre_tokenizers.Split(Regex(r"\d+"), behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(r"[aeiou]"), behavior="contiguous", invert=True),
        pre_tokenizers.Split(Regex(r"x"), behavior="removed"),
        pre_tokenizers.Whitespace(),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    t.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Replace("_", "  "),
                                   decoders.Strip(content="^", left=1, right=0)])
    specs["synth-splits"] = (t, trainers.BpeTrainer(vocab_size=600,
                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
                             [AddedToken("<mask>", rstrip=True, special=True, normalized=False)])

    for name, (tok, trainer, added) in specs.items():
        tok.train_from_iterator(texts, trainer)
        tok.add_tokens([a for a in added if not a.special])
        tok.add_special_tokens([a for a in added if a.special])
        path = os.path.join(OUT, name + ".tokenizer.json")
        tok.save(path)
        tok = Tokenizer.from_file(path)
        cases = []
        for s in texts:
            ids = tok.encode(s, add_special_tokens=False).ids
            ids_sp = tok.encode(s, add_special_tokens=True).ids
            cases.append({"text": s, "ids": ids, "ids_special": ids_sp,
                          "decoded": tok.decode(ids_sp, skip_special_tokens=False),
                          "decoded_skip": tok.decode(ids_sp, skip_special_tokens=True)})
        with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
            json.dump({"tokenizer": name, "cases": cases}, f, ensure_ascii=True, separators=(",", ":"))
            f.write("\n")
        print(name, len(cases), "cases")


if __name__ == "__main__":
    main()
    synthetic()
