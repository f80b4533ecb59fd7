build/lead/pipeline/log.o: pipeline/log.c pipeline/log.h
pipeline/log.h:
