build/lead/pipeline/kafka.o: pipeline/kafka.c pipeline/kafka.h \
 pipeline/config.h operators/budget.h operators/operator.h \
 operators/records.h operators/embeddings.h operators/recommend.h
pipeline/kafka.h:
pipeline/config.h:
operators/budget.h:
operators/operator.h:
operators/records.h:
operators/embeddings.h:
operators/recommend.h:
