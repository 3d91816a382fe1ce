# Chat-template tests (src/template/).
brisk_test(test_template_golden SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_template_golden.c
  ARGS ${BRISK_GOLDEN}/templates ${BRISK_SHARED}/chat-templates LABELS unit)
brisk_test(test_template SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_template.c
  ARGS ${BRISK_GOLDEN}/template-snippets.json ${BRISK_SHARED} LABELS unit)
# The CLI prints the render exactly (no added newline); bos/eos and template come from the folder.
set(_tc ${BRISK_GOLDEN}/template-cli)
add_test(NAME test_template_cli COMMAND sh -c
  "$<TARGET_FILE:brisk-cli> template --model ${BRISK_SHARED}/tokenizers/qwen3 --messages ${_tc}/messages.json --var \"tools=$(cat ${_tc}/tools.json)\" | cmp - ${_tc}/qwen3-tools.txt && $<TARGET_FILE:brisk-cli> template --model ${BRISK_SHARED}/tokenizers/qwen3 --messages ${_tc}/messages2.json --no-generation-prompt | cmp - ${_tc}/qwen3-no-prompt.txt")
set_tests_properties(test_template_cli PROPERTIES LABELS unit)
