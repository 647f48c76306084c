# Front door for the usual tasks; the build itself is CMake (+ Ninja).
#   make demo    the main job (for now: build, then sluice --help and check)
#   make test    install, start servers, build, run every test, stop servers
#   make bench   benchmarks (print tables; never decide CI)

BUILD ?= build

.PHONY: all build demo test bench format format-check clean

all: build

build:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(BUILD)

demo:
	scripts/demo

test:
	scripts/test

bench:
	scripts/bench

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-*
