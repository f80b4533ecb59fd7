build/lead/pipeline/main.o: pipeline/main.c pipeline/cmd_import.h \
 pipeline/cmd_state.h pipeline/config.h operators/budget.h \
 operators/operator.h operators/records.h operators/embeddings.h \
 operators/recommend.h pipeline/demo.h pipeline/gen.h pipeline/codec.h \
 pipeline/kafka.h pipeline/log.h pipeline/runtime.h pipeline/metrics.h
pipeline/cmd_import.h:
pipeline/cmd_state.h:
pipeline/config.h:
operators/budget.h:
operators/operator.h:
operators/records.h:
operators/embeddings.h:
operators/recommend.h:
pipeline/demo.h:
pipeline/gen.h:
pipeline/codec.h:
pipeline/kafka.h:
pipeline/log.h:
pipeline/runtime.h:
pipeline/metrics.h:
