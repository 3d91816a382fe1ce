# Chat-template tests (src/template/).
