# Kinesis Data Stream of executed trades: trade-archiver consumes trade-execution from MSK and puts each
# trade here (partition key = symbol), for real-time consumers beside the S3/Glue history.

resource "aws_kinesis_stream" "trades" {
  name             = var.name
  shard_count      = var.shard_count
  retention_period = var.retention_hours
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_arn

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }

  shard_level_metrics = ["IncomingRecords", "OutgoingRecords", "WriteProvisionedThroughputExceeded", "IteratorAgeMilliseconds"]

  tags = var.tags
}
