#!/bin/sh
# InfluxDB 2 answers InfluxQL (which every dashboard uses) only for buckets that have a
# database/retention-policy mapping; the gateway writes through the v2 API, which creates none.
set -e
bucket_id=$(influx bucket list --name "$DOCKER_INFLUXDB_INIT_BUCKET" --hide-headers | cut -f1)
influx v1 dbrp create --db "$DOCKER_INFLUXDB_INIT_BUCKET" --rp autogen \
  --bucket-id "$bucket_id" --default
