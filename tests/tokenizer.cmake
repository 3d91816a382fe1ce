# Tokenizer tests (src/tokenizer/).
brisk_test(test_tokenizer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_tokenizer.c
  ARGS ${BRISK_SHARED} ${BRISK_GOLDEN} LABELS unit)
brisk_test(test_tokenizer_api SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_tokenizer_api.c
  ARGS ${BRISK_SHARED} LABELS unit)
