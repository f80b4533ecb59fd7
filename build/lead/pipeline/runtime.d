build/lead/pipeline/runtime.o: pipeline/runtime.c pipeline/runtime.h \
 operators/records.h pipeline/config.h operators/budget.h \
 operators/operator.h operators/embeddings.h operators/recommend.h \
 pipeline/metrics.h pipeline/api.h pipeline/http.h pipeline/codec.h \
 pipeline/kafka.h pipeline/log.h state/state.h
pipeline/runtime.h:
operators/records.h:
pipeline/config.h:
operators/budget.h:
operators/operator.h:
operators/embeddings.h:
operators/recommend.h:
pipeline/metrics.h:
pipeline/api.h:
pipeline/http.h:
pipeline/codec.h:
pipeline/kafka.h:
pipeline/log.h:
state/state.h:
