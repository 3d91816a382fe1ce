# Tokenizer tests (src/tokenizer/).
brisk_test(test_tokenizer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_tokenizer.c
  ARGS ${BRISK_SHARED} ${BRISK_GOLDEN} LABELS unit)
brisk_test(test_tokenizer_api SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_tokenizer_api.c
  ARGS ${BRISK_SHARED} LABELS unit)

# Benchmark (not a test): build/tests/tokenizer_bench TOKENIZER TEXT; see bench/tokenizer_bench.py.
add_executable(tokenizer_bench ${CMAKE_SOURCE_DIR}/bench/tokenizer_bench.c)
target_compile_options(tokenizer_bench PRIVATE ${BRISK_WARN})
target_link_libraries(tokenizer_bench PRIVATE brisk)
