# Included at the end of llama.cpp's project() call while llama-cpp-python builds it
# (CMAKE_PROJECT_llama.cpp_INCLUDE, set in the Makefile's LLAMA_CMAKE_ARGS).
#
# llama-cpp-python forces LLAMA_BUILD_COMMON on, but the Python package only loads libllama and
# libggml*; the common library (argument parsing, chat parsers, Jinja, downloads) is for llama.cpp's
# own programs and multimodal library, neither of which is built here. Turned off again at this
# point, before llama.cpp reads it.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library" FORCE)
