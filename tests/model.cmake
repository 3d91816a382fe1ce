# Model loading and forward tests (src/format, src/model, src/engine, src/backend/cpu).
brisk_test(test_stories SOURCES unit/test_stories.c ARGS ${BRISK_SHARED} LABELS model)
brisk_test(test_loader_errors SOURCES unit/test_loader_errors.c ARGS ${BRISK_SHARED} LABELS unit)
target_link_libraries(test_loader_errors PRIVATE m)
brisk_test(test_goldens SOURCES unit/test_goldens.c ARGS ${BRISK_GOLDEN} LABELS model)
target_link_libraries(test_goldens PRIVATE m)
brisk_test(test_sampler SOURCES unit/test_sampler.c LABELS unit)
target_link_libraries(test_sampler PRIVATE m)
brisk_test(test_generate SOURCES unit/test_generate.c ARGS ${BRISK_SHARED} LABELS model)
brisk_test(test_batch SOURCES unit/test_batch.c ARGS ${BRISK_SHARED} LABELS model)
target_link_libraries(test_batch PRIVATE m)
brisk_test(test_cli SOURCES e2e/test_cli.c ARGS $<TARGET_FILE:brisk-cli> ${BRISK_SHARED} LABELS model)
# The public header as strict C11 and as C++ (llama.cpp's test-c idea).
brisk_test(test_api_c SOURCES e2e/api_c.c LABELS unit)
set_target_properties(test_api_c PROPERTIES C_STANDARD 11 C_EXTENSIONS OFF)
target_compile_options(test_api_c PRIVATE -pedantic -Werror)
brisk_test(test_api_cpp SOURCES e2e/api_cpp.cpp LABELS unit)
target_compile_options(test_api_cpp PRIVATE -pedantic -Werror)
# examples/simple.c must build and run against a real model.
add_executable(example_simple ${CMAKE_SOURCE_DIR}/examples/simple.c)
target_compile_options(example_simple PRIVATE ${BRISK_WARN})
target_link_libraries(example_simple PRIVATE brisk)
if(BRISK_CUDA)
  set_target_properties(example_simple PROPERTIES LINKER_LANGUAGE CUDA)
endif()
add_test(NAME example_simple COMMAND example_simple ${BRISK_SHARED}/models/stories260K-mlx-4bit "Once upon a time")
set_tests_properties(example_simple PROPERTIES LABELS model PASS_REGULAR_EXPRESSION "there was")
brisk_test(test_hub SOURCES unit/test_hub.c LABELS unit)
target_link_libraries(test_hub PRIVATE PkgConfig::MHD)

# The same parity checks on the CUDA backend (label gpu; exit code 77 = skipped without a card),
# and every CUDA matmul path against the reference.
if(BRISK_CUDA)
  add_test(NAME test_stories_gpu COMMAND test_stories ${BRISK_SHARED} cuda)
  add_test(NAME test_goldens_gpu COMMAND test_goldens ${BRISK_GOLDEN} cuda)
  brisk_test(test_ops_cuda SOURCES ops/test_ops_cuda.c LABELS gpu)
  target_link_libraries(test_ops_cuda PRIVATE CUDA::cudart_static m)
  # the attention op (flash-decoding and split-K kernels) against the reference
  brisk_test(test_attn_cuda SOURCES ops/test_attn_cuda.c LABELS gpu)
  target_link_libraries(test_attn_cuda PRIVATE CUDA::cudart_static m)
  # the same without clusters: the kernels large batches and contexts past 8,192 run (the
  # counter merge; the fused RoPE on the slim kernel)
  add_test(NAME test_attn_cuda_counter COMMAND test_attn_cuda)
  set_tests_properties(test_attn_cuda_counter PROPERTIES ENVIRONMENT BRISK_CUDA_ATTN=counter)
  # the prefill attention (tensor-core flash kernel) against the reference
  brisk_test(test_fattn_cuda SOURCES ops/test_fattn_cuda.c LABELS gpu)
  target_link_libraries(test_fattn_cuda PRIVATE CUDA::cudart_static m)
  # the sampler chain on the device against the host sampler
  brisk_test(test_sample_cuda SOURCES ops/test_sample_cuda.c LABELS gpu)
  target_link_libraries(test_sample_cuda PRIVATE CUDA::cudart_static m)
  set_tests_properties(test_stories_gpu test_goldens_gpu test_ops_cuda test_attn_cuda
    test_attn_cuda_counter test_fattn_cuda test_sample_cuda PROPERTIES
    LABELS gpu SKIP_RETURN_CODE 77)
endif()
# The same model checks on the fast CPU backend (backend/cpu/, issue 6).
add_test(NAME test_stories_cpu COMMAND test_stories ${BRISK_SHARED} cpu)
set_tests_properties(test_stories_cpu PROPERTIES LABELS model)
add_test(NAME test_goldens_cpu COMMAND test_goldens ${BRISK_GOLDEN} cpu)
set_tests_properties(test_goldens_cpu PROPERTIES LABELS model)
