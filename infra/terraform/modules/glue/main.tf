# Glue Data Catalog for the trade history: one database and the `trades` table over the Parquet files
# trade-archiver writes, partitioned by dt (UTC date, yyyy-MM-dd) and symbol. Partition projection lets
# Athena find new partitions without a crawler or MSCK REPAIR (symbol is injected: a query names the
# symbols it reads, as every per-market query does). Prices and quantities are decimal(38,8),
# never floating point. deploy/athena/trades.sql is the same table as DDL; every column of the files
# (services/trade_archiver/parquet.py) is declared. Only files a manifest commits (s3://bucket/manifests/) are
# final, but a range rewritten after a crash reuses its file names, so no trade is ever listed twice.

resource "aws_glue_catalog_database" "this" {
  name        = var.database_name
  description = "Spot exchange trade history (Parquet on S3)"
}

resource "aws_glue_catalog_table" "trades" {
  database_name = aws_glue_catalog_database.this.name
  name          = "trades"
  description   = "Executed trades, one row per fill, written by trade-archiver"
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    "classification"              = "parquet"
    "parquet.compression"         = "ZSTD"
    "EXTERNAL"                    = "TRUE"
    "projection.enabled"          = "true"
    "projection.dt.type"          = "date"
    "projection.dt.format"        = "yyyy-MM-dd"
    "projection.dt.range"         = "2024-01-01,NOW"
    "projection.dt.interval"      = "1"
    "projection.dt.interval.unit" = "DAYS"
    "projection.symbol.type"      = "injected"
    "storage.location.template"   = "${var.trades_location}dt=$${dt}/symbol=$${symbol}/"
  }

  partition_keys {
    name    = "dt"
    type    = "string"
    comment = "UTC trade date, yyyy-MM-dd"
  }

  partition_keys {
    name    = "symbol"
    type    = "string"
    comment = "Market symbol, e.g. BTCUSDT"
  }

  storage_descriptor {
    location      = var.trades_location
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
    compressed    = true

    ser_de_info {
      name                  = "parquet"
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
      parameters = {
        "serialization.format" = "1"
      }
    }

    # symbol (string) is the second partition key above: Hive and Athena reject a name that is both a
    # column and a partition key, so queries read it from the partition path (symbol=...).
    columns {
      name = "trade_id"
      type = "bigint"
    }
    columns {
      name = "price"
      type = "decimal(38,8)"
    }
    columns {
      name = "qty"
      type = "decimal(38,8)"
    }
    columns {
      name = "quote_qty"
      type = "decimal(38,8)"
    }
    columns {
      name = "buyer_order_id"
      type = "bigint"
    }
    columns {
      name = "seller_order_id"
      type = "bigint"
    }
    columns {
      name = "buyer_is_maker"
      type = "boolean"
    }
    columns {
      name = "ts"
      type = "timestamp"
    }
    columns {
      name = "seq"
      type = "bigint"
    }
    columns {
      name = "buyer_user_id"
      type = "bigint"
    }
    columns {
      name = "seller_user_id"
      type = "bigint"
    }
    columns {
      name = "taker_side"
      type = "string"
    }
    columns {
      name = "buyer_fee"
      type = "decimal(38,8)"
    }
    columns {
      name = "seller_fee"
      type = "decimal(38,8)"
    }
    columns {
      name = "kafka_partition"
      type = "int"
    }
    columns {
      name = "kafka_offset"
      type = "bigint"
    }
  }
}

resource "aws_glue_data_catalog_encryption_settings" "this" {
  data_catalog_encryption_settings {
    connection_password_encryption {
      return_connection_password_encrypted = true
      aws_kms_key_id                       = var.kms_key_arn
    }

    encryption_at_rest {
      catalog_encryption_mode = "SSE-KMS"
      sse_aws_kms_key_id      = var.kms_key_arn
    }
  }
}
