# Tokenizer tests (src/tokenizer/).
