# rbdcsi: a CSI driver for Ceph RBD, in C.
#
#   make                 build build/rbdcsi
#   make check           install what is missing, then every test (what CI runs)
#   make demo            install what is missing, then the demo on a throwaway Ceph
#   make unit            unit tests only            make SANITIZE=address,undefined unit
#   make integration     real Ceph + the binary     make sanity      csi-sanity only
#   make lint format-check cppcheck fuzz-replay      make format      reformat the tree
#   make fuzz            libFuzzer (clang), 1M inputs per target (FUZZ_RUNS=)
#   make check-kernel    krbd/rbd-nbd on a real Debian kernel in qemu (tests/kernel/run.sh)
#   make V=1             show the commands
#
# Objects go to build/ (build/san/ for sanitizer builds). Nothing generated is committed.

SHELL := /bin/bash
.DEFAULT_GOAL := all

V ?= 0
ifeq ($(V),0)
Q := @
else
Q :=
endif

VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0)
VERSION := $(if $(VERSION),$(VERSION),0.1.0)

TOP := build
ifneq ($(SANITIZE),)
B := $(TOP)/san
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
else
B := $(TOP)
SAN_FLAGS :=
endif
# make fuzz: the fuzz targets under clang's libFuzzer with ASan+UBSan, objects in build/fuzz/.
ifneq ($(FUZZER),)
B := $(TOP)/fuzz
CC := clang
SAN_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
FUZZ_MAIN :=
FUZZ_LINK := -fsanitize=fuzzer
# clang warns on two idioms gcc accepts (exec.c's PATH default + 5, log.c's vsnprintf wrapper).
FUZZ_CFLAGS := -Wno-string-plus-int -Wno-format-nonliteral
else
FUZZ_MAIN := tests/fuzz/fuzz_main.c
FUZZ_LINK :=
endif
GEN := $(TOP)/gen

# CSI spec, from the Go module proxy, pinned and checksum-verified.
CSI_SPEC_VERSION := v1.12.0
CSI_SPEC_SHA256 := 7db9d6ab828ad6b71f9861e78bd4c1c4eb3906bd804e8fd304c5143ea73a3da9
GOPROXY_URL ?= $(firstword $(subst $(comma), ,$(or $(shell go env GOPROXY 2>/dev/null),https://proxy.golang.org)))
comma := ,

# csi-sanity, go-installed at a pinned version.
CSI_SANITY_VERSION := v5.4.0
CSI_SANITY := $(TOP)/tools/csi-sanity-$(CSI_SANITY_VERSION)

CC ?= cc
CFLAGS_BASE := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wmissing-declarations \
	-Wstrict-prototypes -Wformat=2 -Wformat-security -Wshadow -Wno-unused-parameter \
	-fstack-protector-strong -fPIC -D_GNU_SOURCE -pthread
ifeq ($(SANITIZE)$(FUZZER),)
CFLAGS_BASE += -D_FORTIFY_SOURCE=2
endif
CPPFLAGS_ALL := -I. -DRBDCSI_VERSION='"$(VERSION)"'
LDFLAGS_ALL := -pthread -Wl,-z,relro,-z,now -pie $(SAN_FLAGS)
LIBS := -lgrpc -lgpr -lprotobuf-c -lblkid -lmount -ludev -ljson-c -lcrypto -lcryptsetup -lm

CFLAGS_ALL = $(CFLAGS_BASE) $(SAN_FLAGS) $(FUZZ_CFLAGS) $(CFLAGS)

PROTO_C := $(GEN)/csi.pb-c.c $(GEN)/google/protobuf/timestamp.pb-c.c \
	$(GEN)/google/protobuf/wrappers.pb-c.c
PROTO_H := $(PROTO_C:.c=.h) $(GEN)/google/protobuf/descriptor.pb-c.h

DRIVER_SRCS := $(sort $(wildcard driver/*/*.c))
PLUGIN_SRCS := $(sort $(filter-out plugin/main.c,$(wildcard plugin/*.c)))
DRIVER_OBJS := $(DRIVER_SRCS:%.c=$(B)/obj/%.o)
PLUGIN_OBJS := $(PLUGIN_SRCS:%.c=$(B)/obj/%.o)
PROTO_OBJS := $(PROTO_C:$(GEN)/%.c=$(B)/obj/gen/%.o)

UNIT_SRCS := $(sort $(shell find tests/unit -name 'test_*.c' 2>/dev/null))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/unit/%)
FUZZ_SRCS := $(sort $(filter-out tests/fuzz/fuzz_main.c,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/tests/fuzz/%)

C_SOURCES := $(shell git ls-files '*.c' '*.h' 2>/dev/null) \
	$(shell git ls-files --others --exclude-standard '*.c' '*.h' 2>/dev/null)

.PHONY: all deps check check-all unit fuzz-replay fuzz fuzz-run lint format format-check cppcheck \
	integration sanity demo clean proto tools tests-build bench bench-k8s e2e-k8s image

all: $(B)/rbdcsi

# ---------------------------------------------------------------------------------------------
# Generated protocol code

$(TOP)/proto/csi.proto:
	$(Q)mkdir -p $(TOP)/proto
	@echo "  FETCH   csi.proto $(CSI_SPEC_VERSION) from $(GOPROXY_URL)"
	$(Q)curl -fsSL --retry 3 -o $(TOP)/proto/spec.zip.tmp \
		"$(GOPROXY_URL)/github.com/container-storage-interface/spec/@v/$(CSI_SPEC_VERSION).zip"
	$(Q)echo "$(CSI_SPEC_SHA256)  $(TOP)/proto/spec.zip.tmp" | sha256sum -c --quiet - || \
		{ echo "csi spec zip checksum mismatch" >&2; rm -f $(TOP)/proto/spec.zip.tmp; exit 1; }
	$(Q)unzip -p $(TOP)/proto/spec.zip.tmp \
		"github.com/container-storage-interface/spec@$(CSI_SPEC_VERSION)/csi.proto" > $@.tmp
	$(Q)rm -f $(TOP)/proto/spec.zip.tmp && mv $@.tmp $@

$(GEN)/csi.pb-c.c $(GEN)/csi.pb-c.h: $(TOP)/proto/csi.proto
	$(Q)mkdir -p $(GEN)
	@echo "  PROTOC  $<"
	$(Q)protoc-c --c_out=$(GEN) -I$(TOP)/proto $<

$(GEN)/google/protobuf/%.pb-c.c $(GEN)/google/protobuf/%.pb-c.h: /usr/include/google/protobuf/%.proto
	$(Q)mkdir -p $(GEN)
	@echo "  PROTOC  $<"
	$(Q)protoc-c --c_out=$(GEN) -I/usr/include $<

proto: $(PROTO_C) $(PROTO_H)

# ---------------------------------------------------------------------------------------------
# Objects and binaries

$(B)/obj/gen/%.o: $(GEN)/%.c $(PROTO_H)
	$(Q)mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS_ALL) $(filter-out -Wshadow -Wmissing-declarations,$(CFLAGS_ALL)) -w -c $< -o $@

$(B)/obj/%.o: %.c $(PROTO_H)
	$(Q)mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

# Only plugin/ (and the tests of plugin/) see the generated protocol headers: driver/ is compiled
# without them on its include path, so it cannot include them (STYLE.md layering).
# ("private": the objects of libdriver.a built on the way do not inherit it).
$(PLUGIN_OBJS) $(B)/obj/plugin/main.o $(PROTO_OBJS) $(FUZZ_BINS): \
	private CPPFLAGS_ALL += -I$(GEN)
$(B)/tests/unit/plugin/%: private CPPFLAGS_ALL += -I$(GEN)

$(B)/libdriver.a: $(DRIVER_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/libplugin.a: $(PLUGIN_OBJS) $(PROTO_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/rbdcsi: $(B)/obj/plugin/main.o $(B)/libplugin.a $(B)/libdriver.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

# rbdcsi loads librados/librbd at run time (driver/ceph/ceph_lib.h); the driver/ceph unit tests
# also call them directly to look at the pool, so they link them (not test_ceph_lib: it checks
# that a process which has not connected does not map them).
$(filter-out %/test_ceph_lib,$(filter $(B)/tests/unit/driver/ceph/%,$(UNIT_BINS))): \
	LIBS += -lrbd -lrados

$(B)/tests/unit/%: tests/unit/%.c $(B)/libplugin.a $(B)/libdriver.a $(PROTO_H)
	$(Q)mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CPPFLAGS_ALL) -Itests $(CFLAGS_ALL) -o $@ $< $(B)/libplugin.a $(B)/libdriver.a \
		$(LDFLAGS_ALL) $(LIBS) -lcmocka

# fuzz_controller runs the Controller handlers over a FAKE driver/ceph (in memory), linked ahead
# of libdriver.a so that its definitions win.
$(B)/tests/fuzz/fuzz_controller: FUZZ_FAKE := tests/fuzz/fake_ceph_driver.c \
	-Wl,--allow-multiple-definition
$(B)/tests/fuzz/fuzz_controller: tests/fuzz/fake_ceph_driver.c tests/fuzz/fake_ceph_driver.h

$(B)/tests/fuzz/%: tests/fuzz/%.c $(FUZZ_MAIN) $(B)/libplugin.a $(B)/libdriver.a
	$(Q)mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -o $@ $< $(FUZZ_FAKE) $(FUZZ_MAIN) $(B)/libplugin.a \
		$(B)/libdriver.a $(LDFLAGS_ALL) $(FUZZ_LINK) $(LIBS)

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

# ---------------------------------------------------------------------------------------------
# Tests

deps:
	$(Q)tests/deps.sh

$(CSI_SANITY):
	$(Q)mkdir -p $(TOP)/tools/gobin
	@echo "  GO      csi-sanity $(CSI_SANITY_VERSION)"
	$(Q)GOBIN=$(abspath $(TOP)/tools/gobin) GOFLAGS=-buildvcs=false \
		go install github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$(CSI_SANITY_VERSION)
	$(Q)mv $(TOP)/tools/gobin/csi-sanity $@

tools: $(CSI_SANITY)

tests-build: $(UNIT_BINS) $(FUZZ_BINS)

unit: $(UNIT_BINS)
	$(Q)tests/run-unit.sh $(UNIT_BINS)

fuzz-replay: $(FUZZ_BINS)
	$(Q)set -e; for f in $(FUZZ_BINS); do \
		n=$$(basename $$f); n=$${n#fuzz_}; \
		echo "  FUZZ    $$n (corpus replay)"; $$f tests/fuzz/corpus/$$n; done

# libFuzzer (clang) on every fuzz target, FUZZ_RUNS inputs each (from the corpus in
# tests/fuzz/corpus/<name>); what it finds goes to build/fuzz/artifacts/ (tests/fuzz/run.sh).
FUZZ_RUNS ?= 1000000
fuzz:
	$(Q)$(MAKE) --no-print-directory FUZZER=1 fuzz-run

fuzz-run: $(FUZZ_BINS)
	$(Q)B=$(B) FUZZ_RUNS=$(FUZZ_RUNS) tests/fuzz/run.sh $(FUZZ_BINS)

lint:
	$(Q)tests/lint.sh

format:
	$(Q)clang-format -i $(filter-out $(GEN)/%,$(C_SOURCES))

format-check:
	@echo "  FORMAT  clang-format --dry-run"
	$(Q)clang-format --dry-run --Werror $(C_SOURCES)

# cppcheck cannot see __attribute__((cleanup)): its leak checks would flag every
# _cleanup_free_/_cleanup_close_ local, so those are off; LeakSanitizer covers leaks instead.
cppcheck: proto
	@echo "  CPPCHK  driver plugin tests"
	$(Q)cppcheck -q --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr --suppress=missingIncludeSystem --suppress=unknownMacro \
		--suppress=preprocessorErrorDirective \
		--suppress=memleak --suppress=resourceLeak --suppress=leakReturnValNotUsed \
		-D_GNU_SOURCE -I. -Idriver/base --std=c11 driver plugin tests/unit tests/fuzz

integration: all $(CSI_SANITY)
	$(Q)B=$(B) CSI_SANITY=$(abspath $(CSI_SANITY)) tests/run-integration.sh

sanity: all $(CSI_SANITY)
	$(Q)B=$(B) CSI_SANITY=$(abspath $(CSI_SANITY)) ONLY=sanity tests/run-integration.sh

# Everything, after the dependencies are in place (a sub-make, so pkg-config and the tools
# installed by deps are seen).
check: deps
	$(Q)$(MAKE) --no-print-directory check-all

check-all:
	$(Q)tests/check.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)B=$(B) tests/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)B=$(B) tests/bench/run.sh
	$(Q)if [ "$${BENCH_K8S:-1}" = 1 ]; then BENCH_JSON=$(B)/bench.json tests/e2e-k8s/bench.sh; fi

# PVC storms and pod start storms on the e2e's real Kubernetes (tests/e2e-k8s/storm.py; also
# the last part of make bench, BENCH_K8S=0 leaves it out): STORM_PVCS=100,500,1000
# STORM_PODS=10,25,50 for all three sizes. Results into build/bench.json.
bench-k8s: deps
	$(Q)BENCH_JSON=$(B)/bench.json tests/e2e-k8s/bench.sh

# A real Kubernetes (etcd, control plane, containerd, kubelet, CSI sidecars) around rbdcsi,
# with the deploy/ objects and a PVC/pod/snapshot/StatefulSet scenario: tests/e2e-k8s/run.sh.
e2e-k8s: deps
	$(Q)tests/e2e-k8s/run.sh

# The container image, from Debian trixie packages with mmdebstrap, no engine and no registry:
# build/image/rbdcsi-<git describe>.oci.tar (deploy/image/build.sh; cached in
# /var/cache/rbdcsi-image). tests/image/check.sh checks it (a stage of make check).
image: $(TOP)/proto/csi.proto
	$(Q)tests/deps.sh mmdebstrap
	$(Q)deploy/image/build.sh

# The krbd and rbd-nbd data paths on a real Debian kernel: qemu (TCG) boots linux-image-*, a
# root filesystem from mmdebstrap (cached in /var/cache/rbdcsi-vm), Ceph and rbdcsi inside it
# (tests/kernel/run.sh).
.PHONY: check-kernel
check-kernel: deps
	$(Q)$(MAKE) --no-print-directory all tools $(B)/tests/unit/driver/host/test_crypt \
		$(B)/tests/unit/driver/host/test_stage_crypt
	$(Q)B=$(B) tests/kernel/run.sh

clean:
	rm -rf $(TOP)
