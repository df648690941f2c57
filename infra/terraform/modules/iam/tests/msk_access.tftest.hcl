# Each service's role on MSK is what its code does and no more: it connects to the one cluster, reads the
# fleet's identity record and the topics it consumes (with its own consumer group only), and writes the
# topics it produces; nothing is granted on a wildcard topic. Each role is bound by Pod Identity to the
# service's ServiceAccount. Every role, the init job's too, reads Aurora's rotated credentials: the one
# database secret, and its KMS key only through Secrets Manager for that secret. Run offline with the AWS provider mocked (tests/deploy/test_terraform.py).

mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "111122223333" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::111122223333:role/mock" }
  }
}

variables {
  name                    = "spot-test"
  cluster_name            = "spot-test"
  msk_cluster_arn         = "arn:aws:kafka:eu-west-1:111122223333:cluster/spot-test/uuid-1"
  msk_cluster_name        = "spot-test"
  msk_cluster_uuid        = "uuid-1"
  kinesis_stream_arn      = "arn:aws:kinesis:eu-west-1:111122223333:stream/spot-test-trades"
  archive_bucket_arn      = "arn:aws:s3:::spot-test-archive"
  kms_key_arn             = "arn:aws:kms:eu-west-1:111122223333:key/test"
  api_secrets_kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/api-secrets"
  database_secret_arn     = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!cluster-test-AbCdEf"
  # Aurora's master secret is sealed with the estate's data key (aurora module: master_user_secret_kms_key_id)
  database_secret_kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/test"
}

run "each_service_reads_and_writes_only_its_own_topics" {
  command = apply

  variables {
    topic = "arn:aws:kafka:eu-west-1:111122223333:topic/spot-test/uuid-1"
    expected = {
      "gateway"         = { read = ["spot.fleet"], write = ["order-requests"] }
      "ingestion"       = { read = ["spot.fleet"], write = ["order-requests"] }
      "order-processor" = { read = ["order-requests", "spot.fleet"], write = ["order-requests.dlq", "validated-orders"] }
      "matcher"         = { read = ["spot.fleet", "validated-orders"], write = ["matched-events", "trade-execution", "validated-orders.dlq"] }
      "settlement"      = { read = ["matched-events", "spot.fleet"], write = ["matched-events.dlq"] }
      "market-data"     = { read = ["matched-events", "spot.fleet", "trade-execution"], write = ["matched-events.dlq", "trade-execution.dlq"] }
      "trade-archiver"  = { read = ["spot.fleet", "trade-execution"], write = ["trade-execution.dlq"] }
    }
  }

  assert {
    condition = jsonencode({
      for service, doc in data.aws_iam_policy_document.service : service => {
        read  = sort(flatten([for s in doc.statement : [for r in s.resources : trimprefix(r, "${var.topic}/")] if contains(s.actions, "kafka-cluster:ReadData")]))
        write = sort(flatten([for s in doc.statement : [for r in s.resources : trimprefix(r, "${var.topic}/")] if contains(s.actions, "kafka-cluster:WriteData")]))
      }
    }) == jsonencode(var.expected)
    error_message = "each role must read the fleet identity and the topics its service consumes, and write the ones it produces, nothing else"
  }
}

run "each_service_connects_to_the_one_cluster_and_uses_only_its_own_group" {
  command = apply

  assert {
    condition = alltrue([
      for service, doc in data.aws_iam_policy_document.service : anytrue([
        for s in doc.statement : contains(s.actions, "kafka-cluster:Connect") && s.resources == toset([var.msk_cluster_arn])
      ])
    ])
    error_message = "every role needs kafka-cluster:Connect on the cluster, and only on it"
  }

  assert {
    condition = alltrue(flatten([
      for service, doc in data.aws_iam_policy_document.service : [
        for s in doc.statement : [
          for r in s.resources : !endswith(r, "/*") if startswith(r, "arn:aws:kafka")
        ]
      ]
    ]))
    error_message = "no service is granted a wildcard topic or group"
  }

  assert {
    condition = alltrue(flatten([
      for service, doc in data.aws_iam_policy_document.service : [
        for s in doc.statement : [
          for r in s.resources : startswith(r, "arn:aws:kafka:eu-west-1:111122223333:group/spot-test/uuid-1/${service}")
        ] if contains(s.actions, "kafka-cluster:AlterGroup")
      ]
    ]))
    error_message = "a consumer may join only its own consumer group (named after the service)"
  }

  assert {
    condition = {
      for service, a in aws_eks_pod_identity_association.service : service => a.service_account
      } == {
      for service in keys(var.topic_access) : service => "spot-exchange-${service}"
    }
    error_message = "each role is bound to its service's ServiceAccount (<release fullname>-<service>)"
  }
}

run "the_init_job_creates_topics_and_stamps_the_fleet_identity" {
  command = apply

  assert {
    condition = anytrue([
      for s in data.aws_iam_policy_document.init.statement :
      s.resources == toset(["arn:aws:kafka:eu-west-1:111122223333:topic/spot-test/uuid-1/spot.fleet"]) && contains(s.actions, "kafka-cluster:WriteData")
    ])
    error_message = "spot admin init writes the fleet's identity record (spot.fleet)"
  }

  assert {
    condition     = anytrue([for s in data.aws_iam_policy_document.init.statement : contains(s.actions, "kafka-cluster:CreateTopic")])
    error_message = "spot admin init creates the topics"
  }
}

run "only_the_gateway_opens_and_init_seals_api_secrets" {
  command = apply

  variables {
    context = ["StringEquals kms:EncryptionContext:purpose spot-api-secret"]
  }

  assert {
    condition = {
      for service, doc in data.aws_iam_policy_document.service : service => sort(flatten([
        for s in doc.statement : tolist(s.actions) if contains(s.resources, var.api_secrets_kms_key_arn)
      ]))
      } == {
      for service in keys(var.topic_access) : service => service == "gateway" ? ["kms:Decrypt"] : []
    }
    error_message = "of the services only the gateway may use the API secrets' key, and only to open them (kms:Decrypt)"
  }

  assert {
    condition = jsonencode([
      for s in data.aws_iam_policy_document.init.statement : {
        actions   = sort(tolist(s.actions))
        condition = [for c in s.condition : "${c.test} ${c.variable} ${join(",", sort(tolist(c.values)))}"]
      } if contains(s.resources, var.api_secrets_kms_key_arn)
      ]) == jsonencode([{
        actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
        condition = var.context
    }])
    error_message = "the init job's pod (spot admin, migration 0009) seals and opens API secrets, with the envelope's encryption context only"
  }

  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.service["gateway"].statement :
      jsonencode([for c in s.condition : "${c.test} ${c.variable} ${join(",", sort(tolist(c.values)))}"]) == jsonencode(var.context)
      if contains(s.resources, var.api_secrets_kms_key_arn)
    ])
    error_message = "the gateway's grant holds only with the envelope's encryption context"
  }
}

run "every_service_and_the_init_job_read_the_rotated_database_secret_and_nothing_else" {
  command = apply

  variables {
    via_secrets_manager = [
      "StringEquals kms:EncryptionContext:SecretARN ${var.database_secret_arn}",
      "StringEquals kms:ViaService secretsmanager.eu-west-1.amazonaws.com",
    ]
  }

  assert {
    condition = alltrue([
      for statements in concat([for doc in data.aws_iam_policy_document.service : doc.statement], [data.aws_iam_policy_document.init.statement]) :
      anytrue([for s in statements : s.actions == toset(["secretsmanager:GetSecretValue"]) && s.resources == toset([var.database_secret_arn])])
    ])
    error_message = "every service and the init job must read the database secret's value (DATABASE_SECRET_ID, shared/dbsecret.py)"
  }

  assert {
    condition = alltrue(flatten([
      for statements in concat([for doc in data.aws_iam_policy_document.service : doc.statement], [data.aws_iam_policy_document.init.statement]) : [
        for s in statements : s.actions == toset(["secretsmanager:GetSecretValue"]) && s.resources == toset([var.database_secret_arn])
        if anytrue([for a in s.actions : startswith(a, "secretsmanager:")])
      ]
    ]))
    error_message = "no role may read any other secret, or do anything else in Secrets Manager"
  }

  assert {
    condition = alltrue([
      for statements in concat([for doc in data.aws_iam_policy_document.service : doc.statement], [data.aws_iam_policy_document.init.statement]) :
      anytrue([
        for s in statements : s.actions == toset(["kms:Decrypt"]) && s.resources == toset([var.database_secret_kms_key_arn])
        && jsonencode(sort([for c in s.condition : "${c.test} ${c.variable} ${join(",", sort(tolist(c.values)))}"])) == jsonencode(var.via_secrets_manager)
      ])
    ])
    error_message = "every role must decrypt the secret's KMS key, only through Secrets Manager and only for the database secret"
  }
}

run "a_database_secret_under_the_aws_managed_key_needs_no_kms_grant" {
  command = apply

  variables {
    database_secret_kms_key_arn = null
  }

  assert {
    condition = !anytrue(flatten([
      for statements in concat([for doc in data.aws_iam_policy_document.service : doc.statement], [data.aws_iam_policy_document.init.statement]) : [
        for s in statements : length(s.condition) > 0 && anytrue([for c in s.condition : c.variable == "kms:EncryptionContext:SecretARN"])
      ]
    ]))
    error_message = "with aws/secretsmanager (no customer key) no role gets a kms:Decrypt for the secret"
  }

  assert {
    condition = alltrue([
      for statements in concat([for doc in data.aws_iam_policy_document.service : doc.statement], [data.aws_iam_policy_document.init.statement]) :
      anytrue([for s in statements : s.actions == toset(["secretsmanager:GetSecretValue"]) && s.resources == toset([var.database_secret_arn])])
    ])
    error_message = "the secret itself is still read"
  }
}
