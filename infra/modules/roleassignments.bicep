// Data-plane roles for the function app's system-assigned identity, each at the narrowest scope that works.
//
//   Storage Table Data Contributor  @ storage account  the SCIM tables (the app creates prefix-named tables on first
//                                                       use, so a per-table scope is impossible) + the host's
//                                                       diagnostic-events table
//   Storage Blob Data Owner         @ storage account  Functions host storage (AzureWebJobsStorage__accountName: the
//                                                       host creates its own containers) + the Flex deployment package
//   Storage Queue Data Message      @ the change feed  send the change feed's events (SCIM_CHANGE_FEED_QUEUE): add
//     Sender                           queue           messages to that one queue, nothing else (no read, no delete)
//   Key Vault Secrets User          @ key vault        resolve the SCIM_BEARER_TOKENS Key Vault reference
//   Monitoring Metrics Publisher    @ app insights     telemetry ingestion with Entra auth (local auth is disabled)
//
// Not granted: Storage Queue Data Contributor. The Functions docs ("Connecting to host storage with an identity") list
// Blob Data Owner as the host-only minimum; the host needs queues only for blob triggers / Durable Functions, and this
// app has HTTP triggers and one timer (whose schedule monitor and singleton lock are blobs). The change feed's queue is
// created by this template, so the app never needs to create one.

param principalId string
param storageAccountName string
param keyVaultName string
param appInsightsName string
param changeFeedQueueName string

var roleIds = {
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource changeFeedQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: changeFeedQueueName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roleIds.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'SCIM function app: SCIM tables and host diagnostic events'
  }
}

resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roleIds.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'SCIM function app: Functions host storage and Flex deployment package'
  }
}

resource queueMessageSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(changeFeedQueue.id, principalId, roleIds.storageQueueDataMessageSender)
  scope: changeFeedQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageQueueDataMessageSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'SCIM function app: add messages to the change feed queue'
  }
}

resource keyVaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roleIds.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'SCIM function app: read the SCIM bearer token secret (Key Vault reference)'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, roleIds.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'SCIM function app: send telemetry with Entra auth'
  }
}
