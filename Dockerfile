# eddy on Debian 12: build stage with the -dev packages, slim runtime stage.
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config librdkafka-dev libavro-dev librocksdb-dev libopenblas-dev \
        libuv1-dev libinih-dev libjansson-dev libcurl4-openssl-dev libhttp-parser-dev \
        uthash-dev libxxhash-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY pipeline pipeline
COPY operators operators
COPY state state
COPY schemas schemas
RUN make -j"$(nproc)" build/eddy

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librdkafka1 libavro23 librocksdb7.8 libopenblas0-pthread libuv1 libinih1 libjansson4 \
        libcurl4 libhttp-parser2.9 libxxhash0 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/eddy --create-home eddy \
    && install -d -o eddy /var/lib/eddy/state
COPY --from=build /src/build/eddy /usr/local/bin/eddy
COPY config/eddy.conf /etc/eddy/eddy.conf
USER eddy
WORKDIR /var/lib/eddy
EXPOSE 9464
ENTRYPOINT ["eddy"]
CMD ["run", "-c", "/etc/eddy/eddy.conf"]
