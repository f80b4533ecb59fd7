build/lead/pipeline/gen.o: pipeline/gen.c pipeline/gen.h \
 operators/records.h pipeline/codec.h pipeline/config.h \
 operators/budget.h operators/operator.h operators/embeddings.h \
 operators/recommend.h pipeline/kafka.h pipeline/log.h
pipeline/gen.h:
operators/records.h:
pipeline/codec.h:
pipeline/config.h:
operators/budget.h:
operators/operator.h:
operators/embeddings.h:
operators/recommend.h:
pipeline/kafka.h:
pipeline/log.h:
