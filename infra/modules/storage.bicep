// One StorageV2 account for everything: Functions host storage (blobs), the Flex deployment package container, the
// SCIM tables (created by the app on first use, names starting with SCIM_TABLE_PREFIX, so none are declared here) and
// the change feed's queue (declared here: the app may only send to it, not create it).
// Shared-key access is disabled: every client (host, deployment, app) authenticates with the app's managed identity.

param location string
param tags object
param storageAccountName string
param skuName string
param deploymentContainerName string
param changeFeedQueueName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    isLocalUserEnabled: false
    isSftpEnabled: false
    isHnsEnabled: false
    dnsEndpointType: 'Standard'
    // Flex Consumption without VNet integration reaches storage over its public endpoint; access is by Entra identity
    // (RBAC) only, since keys and SAS signed with keys are disabled.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// SCIM_CHANGE_FEED_QUEUE: the publisher sends the change feed's events here (base64 JSON batches of CloudEvents).
resource changeFeedQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: changeFeedQueueName
}

output name string = storage.name
output id string = storage.id
// e.g. https://<account>.blob.core.windows.net/ (with trailing slash)
output blobEndpoint string = storage.properties.primaryEndpoints.blob
// SCIM_STORAGE_TABLE_URI wants no trailing slash: https://<account>.table.core.windows.net
output tableEndpoint string = 'https://${storage.name}.table.${environment().suffixes.storage}'
// SCIM_STORAGE_QUEUE_URI, likewise without a trailing slash
output queueEndpoint string = 'https://${storage.name}.queue.${environment().suffixes.storage}'
output changeFeedQueueName string = changeFeedQueue.name
