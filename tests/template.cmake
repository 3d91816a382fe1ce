# Chat-template tests (src/template/).
brisk_test(test_template_golden SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_template_golden.c
  ARGS ${BRISK_GOLDEN}/templates ${BRISK_SHARED}/chat-templates LABELS unit)
brisk_test(test_template SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_template.c
  ARGS ${BRISK_GOLDEN}/template-snippets.json ${BRISK_SHARED} LABELS unit)
