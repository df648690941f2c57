-- The trade history table for Athena, over the Parquet files trade-archiver writes to S3.
--
-- The same table as the Glue table `trades` in infra/terraform/modules/glue (Terraform creates that one;
-- use this DDL where the catalog is not managed by Terraform). Replace s3://ARCHIVE_BUCKET/ with the
-- archive location (Terraform output of module.s3, trades_location) before running it.
--
-- Files: s3://ARCHIVE_BUCKET/trades/dt=YYYY-MM-DD/symbol=SYMBOL/p<partition>-<first>-<last>.parquet, one per
-- (Kafka partition, offset range, date, symbol), each trade exactly once. Amounts are decimal(38,8), never
-- floating point. `dt` and `symbol` are partition keys (in the path, not in the files), found by partition
-- projection: no crawler and no MSCK REPAIR; symbol is injected, so a query names the symbols it reads.
-- Every column of the files is declared (services/trade_archiver/parquet.py).
--
-- `spot trades query "SQL"` runs the same SQL locally with DuckDB over the committed files, e.g.
--   SELECT symbol, count(*) AS trades, sum(quote_qty) AS volume
--   FROM trades WHERE dt = '2026-01-01' AND symbol IN ('BTCUSDT', 'ETHUSDT') GROUP BY symbol;

CREATE EXTERNAL TABLE IF NOT EXISTS trades (
  trade_id bigint,
  price decimal(38,8),
  qty decimal(38,8),
  quote_qty decimal(38,8),
  buyer_order_id bigint,
  seller_order_id bigint,
  buyer_is_maker boolean,
  ts timestamp,
  seq bigint,
  buyer_user_id bigint,
  seller_user_id bigint,
  taker_side string,
  buyer_fee decimal(38,8),
  seller_fee decimal(38,8),
  kafka_partition int,
  kafka_offset bigint
)
PARTITIONED BY (
  dt string,
  symbol string
)
STORED AS PARQUET
LOCATION 's3://ARCHIVE_BUCKET/trades/'
TBLPROPERTIES (
  'classification' = 'parquet',
  'parquet.compression' = 'ZSTD',
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2024-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.symbol.type' = 'injected',
  'storage.location.template' = 's3://ARCHIVE_BUCKET/trades/dt=${dt}/symbol=${symbol}/'
);
