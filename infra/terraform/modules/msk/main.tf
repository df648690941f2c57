# MSK for the order pipeline: TLS everywhere (client-broker and in-cluster), IAM authentication for the
# services and KEDA (SCRAM stays available for tools that cannot sign with IAM), encryption at rest with
# the environment's KMS key, per-partition metrics (consumer lag alarms, KEDA), broker logs in
# CloudWatch. The four topics and their dead-letter topics are created here with the Kafka provider.

locals {
  # Every topic is keyed by symbol, so one symbol's messages keep their order within one partition.
  topics = ["order-requests", "validated-orders", "matched-events", "trade-execution"]
  topic_config = {
    "cleanup.policy"      = "delete"
    "compression.type"    = "zstd"
    "min.insync.replicas" = tostring(max(1, var.replication_factor - 1))
    "retention.ms"        = tostring(var.retention_hours * 3600 * 1000)
  }
  dlq_config = merge(local.topic_config, {
    "retention.ms" = tostring(var.dlq_retention_hours * 3600 * 1000)
  })
}

resource "aws_security_group" "brokers" {
  name        = "${var.name}-msk"
  description = "MSK brokers of ${var.name}"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "brokers_iam" {
  for_each = toset(var.client_security_group_ids)

  security_group_id            = aws_security_group.brokers.id
  description                  = "Kafka clients over TLS with IAM (9098) or SCRAM (9096)"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 9096
  to_port                      = 9098
}

resource "aws_vpc_security_group_egress_rule" "brokers" {
  security_group_id            = aws_security_group.brokers.id
  description                  = "Brokers replicate to each other"
  referenced_security_group_id = aws_security_group.brokers.id
  ip_protocol                  = "-1"
}

resource "aws_cloudwatch_log_group" "brokers" {
  name              = "/aws/msk/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_msk_configuration" "this" {
  name           = var.name
  kafka_versions = [var.kafka_version]

  # Topics exist only through Terraform (and `spot admin init` locally), never by a producer's typo.
  server_properties = <<-PROPERTIES
    auto.create.topics.enable=false
    default.replication.factor=${var.replication_factor}
    min.insync.replicas=${max(1, var.replication_factor - 1)}
    num.partitions=${var.partitions}
    unclean.leader.election.enable=false
  PROPERTIES
}

resource "aws_msk_cluster" "this" {
  cluster_name           = var.name
  kafka_version          = var.kafka_version
  number_of_broker_nodes = var.broker_count
  enhanced_monitoring    = "PER_TOPIC_PER_PARTITION"

  broker_node_group_info {
    instance_type   = var.broker_instance_type
    client_subnets  = var.subnet_ids
    security_groups = [aws_security_group.brokers.id]

    storage_info {
      ebs_storage_info {
        volume_size = var.broker_volume_size
      }
    }

    connectivity_info {
      public_access {
        type = "DISABLED"
      }
    }
  }

  client_authentication {
    unauthenticated = false

    sasl {
      iam   = true
      scram = true
    }
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = var.kms_key_arn

    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this.arn
    revision = aws_msk_configuration.this.latest_revision
  }

  open_monitoring {
    prometheus {
      jmx_exporter {
        enabled_in_broker = true
      }
      node_exporter {
        enabled_in_broker = true
      }
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.brokers.name
      }
    }
  }

  tags = var.tags
}

resource "kafka_topic" "pipeline" {
  for_each = toset(local.topics)

  name               = each.value
  partitions         = var.partitions
  replication_factor = var.replication_factor
  config             = local.topic_config
}

resource "kafka_topic" "dead_letter" {
  for_each = toset(local.topics)

  name               = "${each.value}.dlq"
  partitions         = var.partitions
  replication_factor = var.replication_factor
  config             = local.dlq_config
}
