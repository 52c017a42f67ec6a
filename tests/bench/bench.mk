# The benchmark tools, built with the main Makefile's flags. tests/bench/run.sh runs
#   make -f Makefile -f tests/bench/bench.mk bench-tools
# so that CC, CFLAGS_ALL, CPPFLAGS_ALL, LDFLAGS_ALL and $(B) are the main Makefile's own.
# loadgen links $(B)/libplugin.a only for the generated protobuf-c code (build/gen); idle-libs
# and idle-libs-noceph are the footprint floors (tests/bench/idle.c).

BENCH_OUT := $(B)/bench

.PHONY: bench-tools
bench-tools: $(BENCH_OUT)/loadgen $(BENCH_OUT)/baseline $(BENCH_OUT)/idle-libs \
	$(BENCH_OUT)/idle-libs-noceph

$(BENCH_OUT)/loadgen: tests/bench/loadgen.c tests/bench/bench.h $(B)/libplugin.a $(PROTO_H)
	$(Q)mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -o $@ $< $(B)/libplugin.a $(LDFLAGS_ALL) \
		-lgrpc -lgpr -lprotobuf-c -lm

$(BENCH_OUT)/baseline: tests/bench/baseline.c tests/bench/bench.h
	$(Q)mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -o $@ $< $(LDFLAGS_ALL) -lrbd -lrados -lm

# The footprint floors: every library rbdcsi links, plus librbd/librados (which rbdcsi loads
# at its first cluster connection), loaded and unused (--no-as-needed keeps them); and the same
# without librbd/librados.
$(BENCH_OUT)/idle-libs: tests/bench/idle.c
	$(Q)mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -o $@ $< $(LDFLAGS_ALL) -Wl,--no-as-needed \
		$(filter-out -lrbd -lrados,$(LIBS)) -lrbd -lrados

$(BENCH_OUT)/idle-libs-noceph: tests/bench/idle.c
	$(Q)mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -o $@ $< $(LDFLAGS_ALL) -Wl,--no-as-needed \
		$(filter-out -lrbd -lrados,$(LIBS))
