# The cluster's controllers as Helm releases with pinned chart versions: Karpenter, KEDA and the VPA. A
# separate module (and root) from eks because the helm provider is configured from the cluster it would be
# created with; their IAM (Pod Identity associations) stays in eks and iam, which this takes by name.

resource "helm_release" "karpenter" {
  name             = "karpenter"
  namespace        = "kube-system"
  repository       = "oci://public.ecr.aws/karpenter"
  chart            = "karpenter"
  version          = var.karpenter_version
  create_namespace = false
  wait             = true

  values = [yamlencode({
    settings = {
      clusterName       = var.cluster_name
      interruptionQueue = var.karpenter_interruption_queue
    }
    nodeSelector = { "node-role" = "system" }
    tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
    controller = {
      resources = {
        requests = { cpu = "500m", memory = "512Mi" }
        limits   = { memory = "1Gi" }
      }
    }
  })]


}

resource "helm_release" "keda" {
  name             = "keda"
  namespace        = "keda"
  repository       = "https://kedacore.github.io/charts"
  chart            = "keda"
  version          = var.keda_version
  create_namespace = true
  wait             = true

  values = [yamlencode({
    nodeSelector = { "node-role" = "system" }
    tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
    # deploy/keda/triggerauthentication-msk-iam.yaml: provider aws, identityOwner keda.
    podIdentity = { aws = { irsa = { enabled = false } } }
  })]


}

resource "helm_release" "vpa" {
  name             = "vpa"
  namespace        = "kube-system"
  repository       = "https://charts.fairwinds.com/stable"
  chart            = "vpa"
  version          = var.vpa_chart_version
  create_namespace = false
  wait             = true

  values = [yamlencode({
    recommender = {
      nodeSelector = { "node-role" = "system" }
      tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
    }
    updater = {
      nodeSelector = { "node-role" = "system" }
      tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
    }
    admissionController = {
      nodeSelector = { "node-role" = "system" }
      tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
    }
  })]


}
