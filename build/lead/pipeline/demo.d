build/lead/pipeline/demo.o: pipeline/demo.c pipeline/demo.h \
 pipeline/config.h operators/budget.h operators/operator.h \
 operators/records.h operators/embeddings.h operators/recommend.h \
 pipeline/gen.h pipeline/codec.h pipeline/kafka.h pipeline/log.h \
 pipeline/runtime.h pipeline/metrics.h
pipeline/demo.h:
pipeline/config.h:
operators/budget.h:
operators/operator.h:
operators/records.h:
operators/embeddings.h:
operators/recommend.h:
pipeline/gen.h:
pipeline/codec.h:
pipeline/kafka.h:
pipeline/log.h:
pipeline/runtime.h:
pipeline/metrics.h:
